"""redis-py against a running server: the calls applications make, with
redis-py's own reply parsing (INFO, CLIENT LIST, COMMAND, ACL, SLOWLOG,
XREAD, ...). Exits non-zero with the failing check on stderr.

usage: redis_py_smoke.py PORT
"""
import sys
import threading
import time

import redis


def main(port):
    r = redis.Redis(host="127.0.0.1", port=port, decode_responses=True)
    r.flushall()
    assert r.ping() is True

    # Strings, expiry, counters.
    assert r.set("s", "v", ex=100) is True
    assert r.get("s") == "v"
    assert 99 <= r.ttl("s") <= 100
    assert r.set("s", "w", nx=True) is None
    assert r.incrby("n", 5) == 5
    assert r.incrbyfloat("f", 1.5) == 1.5
    assert r.mset({"a": "1", "b": "2"}) is True
    assert r.mget("a", "b", "nope") == ["1", "2", None]
    assert r.getrange("s", 0, 0) == "v"
    assert r.object("encoding", "n") == "int"
    assert r.memory_usage("s") > 0

    # Pipelines and transactions.
    with r.pipeline(transaction=True) as p:
        p.incr("tx").incr("tx").get("tx")
        assert p.execute() == [1, 2, "2"]
    with r.pipeline(transaction=False) as p:
        for i in range(100):
            p.set(f"k{i}", i)
        assert all(p.execute())
    assert len(list(r.scan_iter(match="k*", count=10))) == 100

    # WATCH conflict: the optimistic-locking helper retries.
    def bump(pipe):
        v = int(pipe.get("w") or 0)
        pipe.multi()
        pipe.set("w", v + 1)

    assert r.transaction(bump, "w") == [True]
    assert r.get("w") == "1"

    # Hashes, lists, sets, sorted sets.
    assert r.hset("h", mapping={"x": "1", "y": "2"}) == 2
    assert r.hgetall("h") == {"x": "1", "y": "2"}
    assert r.rpush("l", "a", "b", "c") == 3
    assert r.lrange("l", 0, -1) == ["a", "b", "c"]
    assert r.lpos("l", "c") == 2
    assert r.sadd("set", "a", "b") == 2
    assert r.smembers("set") == {"a", "b"}
    assert r.zadd("z", {"a": 1, "b": 2.5}) == 2
    assert r.zrange("z", 0, -1, withscores=True) == [("a", 1.0), ("b", 2.5)]
    assert r.zrangebyscore("z", 2, "+inf") == ["b"]
    assert r.zscore("z", "b") == 2.5

    # A blocking pop served by another client's push.
    def push_later():
        time.sleep(0.2)
        redis.Redis(host="127.0.0.1", port=port).lpush("bq", "job")

    t = threading.Thread(target=push_later)
    t.start()
    assert r.blpop("bq", timeout=5) == ("bq", "job")
    t.join()

    # Streams.
    xid = r.xadd("st", {"f": "v"})
    assert r.xread({"st": "0"}) == [["st", [(xid, {"f": "v"})]]]
    r.xgroup_create("st", "g", id="0")
    got = r.xreadgroup("g", "c1", {"st": ">"}, count=1)
    assert got[0][1][0][0] == xid
    assert r.xack("st", "g", xid) == 1

    # Pub/Sub with redis-py's listener.
    ps = r.pubsub()
    ps.subscribe("chan")
    assert ps.get_message(timeout=2)["type"] == "subscribe"
    assert r.publish("chan", "hello") == 1
    msg = ps.get_message(timeout=2)
    assert msg["type"] == "message" and msg["data"] == "hello", msg
    ps.close()

    # Lua: register_script uses EVALSHA, then EVAL on NOSCRIPT.
    r.script_flush()
    incr2 = r.register_script("return redis.call('incrby', KEYS[1], ARGV[1])")
    assert incr2(keys=["lua"], args=[2]) == 2
    assert incr2(keys=["lua"], args=[2]) == 4

    # Introspection, parsed by redis-py.
    info = r.info()
    for field in ("redis_version", "connected_clients", "used_memory", "role"):
        assert field in info, field
    assert info["db0"]["keys"] >= 100
    stats = r.info("commandstats")
    assert stats["cmdstat_set"]["calls"] >= 100
    assert "latency_percentiles_usec_set" in r.info("latencystats")
    assert r.config_get("maxmemory") == {"maxmemory": "0"}
    assert r.config_set("maxmemory-policy", "allkeys-lru") is True
    r.client_setname("smoke")
    assert r.client_getname() == "smoke"
    assert any(c["name"] == "smoke" for c in r.client_list())
    assert r.client_info()["name"] == "smoke"
    cmds = r.command()
    assert cmds["get"]["arity"] == 2, cmds["get"]
    assert r.slowlog_reset() is True
    assert isinstance(r.slowlog_get(), list)
    assert r.acl_whoami() == "default"
    assert r.acl_getuser("default")["enabled"] is True
    assert r.dbsize() > 100
    assert isinstance(r.time(), tuple)

    # Errors keep Redis's types and texts.
    try:
        r.lpush("s", "x")
        raise AssertionError("WRONGTYPE expected")
    except redis.ResponseError as e:
        assert str(e).startswith("WRONGTYPE Operation against a key"), e
    try:
        r.execute_command("NOSUCHCOMMAND")
        raise AssertionError("unknown command expected")
    except redis.ResponseError as e:
        assert "unknown command" in str(e), e

    # Connection pool under threads.
    def worker(i):
        c = redis.Redis(host="127.0.0.1", port=port)
        for j in range(200):
            c.incr("shared")

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert r.get("shared") == "1600"
    print("redis-py", redis.__version__, "ok")


if __name__ == "__main__":
    main(int(sys.argv[1]))
