// node-redis (v4, Debian's node-redis) against a running server: commands,
// MULTI, pipelining, Pub/Sub, blocking pops on an isolated connection,
// scripts, and node-redis's own reply transforms (INFO, CLIENT INFO,
// COMMAND, HGETALL, ZRANGE WITHSCORES, XREAD). Exits non-zero with the
// failing check on stderr.
//
// usage: node node_redis_smoke.js PORT
'use strict';
const assert = require('assert');
const { createClient, commandOptions } = require('redis');

async function main(port) {
  const url = `redis://127.0.0.1:${port}`;
  const c = createClient({ url });
  c.on('error', (e) => { console.error('client error', e); process.exit(2); });
  await c.connect();
  await c.flushAll();
  assert.strictEqual(await c.ping(), 'PONG');

  // Strings, expiry, counters.
  assert.strictEqual(await c.set('s', 'v', { EX: 100 }), 'OK');
  assert.strictEqual(await c.get('s'), 'v');
  assert.ok((await c.ttl('s')) > 90);
  assert.strictEqual(await c.set('s', 'w', { NX: true }), null);
  assert.strictEqual(await c.incrBy('n', 5), 5);
  assert.deepStrictEqual(await c.mGet(['s', 'nope']), ['v', null]);

  // Auto-pipelining: many commands in flight at once.
  const sets = [];
  for (let i = 0; i < 200; i++) sets.push(c.set(`k${i}`, String(i)));
  assert.ok((await Promise.all(sets)).every((r) => r === 'OK'));
  assert.strictEqual(await c.dbSize(), 202);

  // MULTI/EXEC and WATCH.
  const tx = await c.multi().incr('tx').incr('tx').get('tx').exec();
  assert.deepStrictEqual(tx, [1, 2, '2']);

  // Hashes, lists, sets, sorted sets.
  assert.strictEqual(await c.hSet('h', { x: '1', y: '2' }), 2);
  assert.deepStrictEqual({ ...(await c.hGetAll('h')) }, { x: '1', y: '2' });
  assert.strictEqual(await c.rPush('l', ['a', 'b', 'c']), 3);
  assert.deepStrictEqual(await c.lRange('l', 0, -1), ['a', 'b', 'c']);
  assert.strictEqual(await c.sAdd('set', ['a', 'b']), 2);
  assert.deepStrictEqual((await c.sMembers('set')).sort(), ['a', 'b']);
  assert.strictEqual(await c.zAdd('z', [{ score: 1, value: 'a' }, { score: 2.5, value: 'b' }]), 2);
  assert.deepStrictEqual(await c.zRangeWithScores('z', 0, -1),
    [{ value: 'a', score: 1 }, { value: 'b', score: 2.5 }]);

  // A blocking pop on an isolated connection, served by a push.
  const popped = c.blPop(commandOptions({ isolated: true }), 'bq', 5);
  setTimeout(() => c.lPush('bq', 'job'), 100);
  assert.deepStrictEqual({ ...(await popped) }, { key: 'bq', element: 'job' });

  // Streams.
  const id = await c.xAdd('st', '*', { f: 'v' });
  const read = await c.xRead({ key: 'st', id: '0' });
  assert.strictEqual(read[0].name, 'st');
  assert.strictEqual(read[0].messages[0].id, id);
  assert.deepStrictEqual({ ...read[0].messages[0].message }, { f: 'v' });

  // Pub/Sub on a duplicate connection.
  const sub = c.duplicate();
  await sub.connect();
  const got = new Promise((resolve) => sub.subscribe('chan', (m) => resolve(m)));
  await new Promise((r) => setTimeout(r, 100));
  assert.strictEqual(await c.publish('chan', 'hello'), 1);
  assert.strictEqual(await got, 'hello');
  await sub.quit();

  // Scripts: EVALSHA after SCRIPT LOAD.
  const sha = await c.scriptLoad("return redis.call('incrby', KEYS[1], ARGV[1])");
  assert.strictEqual(await c.evalSha(sha, { keys: ['lua'], arguments: ['2'] }), 2);

  // Introspection through node-redis's transforms.
  const info = await c.info('server');
  assert.ok(info.includes('redis_version:7.0.15'), info);
  await c.clientSetName('smoke');
  assert.strictEqual(await c.clientGetName(), 'smoke');
  const me = await c.clientInfo();
  assert.strictEqual(me.name, 'smoke');
  const [get] = await c.commandInfo(['get']);
  assert.strictEqual(get.name, 'get');
  assert.strictEqual(get.arity, 2);
  assert.deepStrictEqual({ ...(await c.configGet('maxmemory')) }, { maxmemory: '0' });

  // Errors keep Redis's texts.
  await assert.rejects(c.lPush('s', 'x'), /^\[?.*WRONGTYPE Operation against a key/);
  await assert.rejects(c.sendCommand(['NOSUCHCOMMAND']), /unknown command/);

  await c.quit();
  console.log('node-redis', require('redis/package.json').version, 'ok');
}

main(Number(process.argv[2])).catch((e) => { console.error(e); process.exit(1); });
