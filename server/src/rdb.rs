//! An RDB writer in Redis 7.0's format (RDB version 10), so that real Redis
//! replicas, `redis-cli --rdb` and `redis-check-rdb` accept what a Ferrite
//! primary sends, and a real Redis can start from a Ferrite snapshot.
//!
//! Values use the plain, encoding-independent RDB types that Redis 7.0
//! still loads (and re-encodes at its own thresholds): strings, `LIST` (1),
//! `SET` (2), `HASH` (4) and `ZSET_2` (5, binary scores). Redis's compact
//! types (listpacks, intsets) would only save bytes on the wire. Streams
//! are `STREAM_LISTPACKS_2` as Redis 7.0 writes them; Bloom filters are a
//! module value (`MODULE_2`) of Ferrite's own module type, which a real
//! Redis refuses as it refuses any module it does not have.
//!
//! A snapshot is a point in time without holding the dataset while it is
//! written: [`arm`], called with every shard held (`Store::with_locked`),
//! writes the header and arms a capture on each shard; the shards are then
//! let go, and each is serialized by whoever locks it next, before that
//! lock's holder can change it: a client that needs the shard, or the
//! snapshot's own thread in [`Pending::collect`], which then assembles the
//! file. A client waits for at most one shard's serialization instead of
//! the whole dataset's, as a `fork` gives Redis.

use ferrite_storage::{Store, Value, NO_EXPIRE};

/// Redis version announced in the `redis-ver` AUX field: the format we write.
pub const REDIS_VER: &str = "7.0.15";

const RDB_VERSION: &[u8; 9] = b"REDIS0010";

const TYPE_STRING: u8 = 0;
const TYPE_LIST: u8 = 1;
const TYPE_SET: u8 = 2;
const TYPE_HASH: u8 = 4;
const TYPE_ZSET_2: u8 = 5;
/// Redis 7.0's stream type (`RDB_TYPE_STREAM_LISTPACKS_2`): listpack nodes,
/// then the stream's IDs and counters, then consumer groups with their
/// `entries_read`.
const TYPE_STREAM_LISTPACKS_2: u8 = 19;
/// A module value (`RDB_TYPE_MODULE_2`): the module type's 64-bit id, then
/// the module's own fields, each behind an opcode, up to an EOF opcode.
pub const TYPE_MODULE_2: u8 = 7;
/// `RDB_MODULE_OPCODE_*`: what each field of a module value is.
pub const MODULE_OPCODE_EOF: u64 = 0;
pub const MODULE_OPCODE_UINT: u64 = 2;
pub const MODULE_OPCODE_DOUBLE: u64 = 4;
pub const MODULE_OPCODE_STRING: u64 = 5;

/// The module type name Ferrite's Bloom filters are saved under. Not
/// RedisBloom's `MBbloom--`: our bits are set with a different hash, so a
/// RedisBloom loading them would answer false negatives. A real Redis
/// (with or without RedisBloom) refuses such a file the way it refuses any
/// module it lacks ("no matching module type 'ferbloom-'") instead of
/// loading wrong filters.
pub const BLOOM_MODULE_NAME: &[u8; 9] = b"ferbloom-";
/// The layout version of that record (the module id's low 10 bits).
pub const BLOOM_MODULE_ENCVER: u64 = 1;
/// The chain-options bit of a non-scaling filter (RedisBloom's value).
pub const BLOOM_OPT_NO_SCALING: u64 = 8;

/// The 64 characters a module type name is written with, in the order
/// Redis's `moduleTypeEncodeId` numbers them.
const MODULE_NAME_CHARSET: &[u8; 64] =
    b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

/// A module type id as Redis's `moduleTypeEncodeId` builds it: nine 6-bit
/// characters, then the 10-bit encoding version.
pub fn module_type_id(name: &[u8; 9], encver: u64) -> u64 {
    let id = name.iter().fold(0u64, |id, c| {
        let n = MODULE_NAME_CHARSET.iter().position(|x| x == c).unwrap_or(0);
        (id << 6) | n as u64
    });
    (id << 10) | (encver & 1023)
}

/// The name and encoding version inside a module type id (Redis's
/// `moduleTypeNameByID`), for error messages and matching.
pub fn module_type_name(id: u64) -> (String, u64) {
    let name = (0..9)
        .map(|i| {
            let shift = 10 + 6 * (8 - i);
            MODULE_NAME_CHARSET[((id >> shift) & 63) as usize] as char
        })
        .collect();
    (name, id & 1023)
}

const OPCODE_AUX: u8 = 250;
const OPCODE_RESIZEDB: u8 = 251;
const OPCODE_EXPIRETIME_MS: u8 = 252;
const OPCODE_SELECTDB: u8 = 254;
/// A function library's code (Redis 7.0's `RDB_OPCODE_FUNCTION2`).
pub const OPCODE_FUNCTION2: u8 = 245;
const OPCODE_EOF: u8 = 255;

/// `RDB_ENC_INT8/16/32` under the `11` length prefix.
const ENC_INT8: u8 = 0xC0;
const ENC_INT16: u8 = 0xC1;
const ENC_INT32: u8 = 0xC2;

/// Redis's CRC-64 (Jones polynomial 0xad93d23594c935a9, reflected, init
/// 0, no final xor: the `crc` catalogue's CRC-64/REDIS), 16 bytes a step.
static CRC64: crc::Crc<u64, crc::Table<16>> =
    crc::Crc::<u64, crc::Table<16>>::new(&crc::CRC_64_REDIS);

/// Continues Redis's CRC-64 over `data`; start from 0. The RDB's
/// trailing checksum covers every byte before it, so loaders can detect
/// truncated or corrupted transfers.
pub fn crc64(crc: u64, data: &[u8]) -> u64 {
    // The digest keeps its state bit-reversed; a reflected CRC's value is
    // that state reversed back.
    let mut d = CRC64.digest_with_initial(crc.reverse_bits());
    d.update(data);
    d.finalize()
}

/// Appends an RDB length (6-bit, 14-bit, 32-bit or 64-bit big-endian form).
pub fn put_len(out: &mut Vec<u8>, n: u64) {
    if n < 1 << 6 {
        out.push(n as u8);
    } else if n < 1 << 14 {
        out.push(0x40 | (n >> 8) as u8);
        out.push(n as u8);
    } else if n <= u64::from(u32::MAX) {
        out.push(0x80);
        out.extend_from_slice(&(n as u32).to_be_bytes());
    } else {
        out.push(0x81);
        out.extend_from_slice(&n.to_be_bytes());
    }
}

/// Appends an RDB string: integer-encoded when the bytes are a canonical
/// integer that fits 32 bits (as Redis's `rdbTryIntegerEncoding`), else
/// length-prefixed raw bytes.
pub fn put_string(out: &mut Vec<u8>, s: &[u8]) {
    if s.len() <= 11 && ferrite_storage::is_canonical_i64(s) {
        if let Some(v) = std::str::from_utf8(s)
            .ok()
            .and_then(|t| t.parse::<i64>().ok())
        {
            if let Ok(b) = i8::try_from(v) {
                out.push(ENC_INT8);
                out.extend_from_slice(&b.to_le_bytes());
                return;
            }
            if let Ok(b) = i16::try_from(v) {
                out.push(ENC_INT16);
                out.extend_from_slice(&b.to_le_bytes());
                return;
            }
            if let Ok(b) = i32::try_from(v) {
                out.push(ENC_INT32);
                out.extend_from_slice(&b.to_le_bytes());
                return;
            }
        }
    }
    if s.len() > COMPRESS_MIN {
        SPANS.with(|spans| {
            if let Some(v) = spans.borrow_mut().as_mut() {
                v.push((out.len(), s.len()));
            }
        });
    }
    put_len(out, s.len() as u64);
    out.extend_from_slice(s);
}

/// [`put_value`], with long strings LZF-compressed when `compress`
/// (`rdbcompression`), as Redis's `DUMP` payloads have them.
pub fn put_value_packed(out: &mut Vec<u8>, value: &Value, compress: bool) -> u8 {
    if !compress {
        return put_value(out, value);
    }
    let recording = Recording::start(true);
    let mut raw = Vec::new();
    let t = put_value(&mut raw, value);
    let spans = recording.finish();
    put_compressed(out, &raw, &spans);
    t
}

/// Strings longer than this are LZF-compressed under `rdbcompression
/// yes` (`rdbSaveRawString`).
const COMPRESS_MIN: usize = 20;

/// `RDB_ENCVAL << 6 | RDB_ENC_LZF`: a compressed string follows.
const ENC_LZF: u8 = 0xc3;

thread_local! {
    /// While a capture runs for a snapshot with `rdbcompression yes`:
    /// where each string longer than [`COMPRESS_MIN`] starts in the
    /// shard's body (its length prefix) and its length. The shard is
    /// serialized raw under its lock; [`Pending::collect`] compresses
    /// these strings afterwards, on the snapshot's own thread, so a client
    /// that captures a shard does not pay for compression.
    static SPANS: std::cell::RefCell<Option<Vec<(usize, usize)>>> =
        const { std::cell::RefCell::new(None) };
}

/// Records [`SPANS`] on this thread for one capture, and stops whatever
/// happens: a capture that panicked must not leave the next one (or a
/// `DUMP`) recording into a stale list.
struct Recording;

impl Recording {
    fn start(on: bool) -> Recording {
        SPANS.with(|sp| *sp.borrow_mut() = on.then(Vec::new));
        Recording
    }

    fn finish(self) -> Vec<(usize, usize)> {
        SPANS.with(|sp| sp.borrow_mut().take()).unwrap_or_default()
    }
}

impl Drop for Recording {
    fn drop(&mut self) {
        SPANS.with(|sp| *sp.borrow_mut() = None);
    }
}

/// [`put_len`]'s bytes for `n`, on the stack: (bytes, how many).
fn len_bytes(n: u64) -> ([u8; 9], usize) {
    let mut b = [0u8; 9];
    let k = if n < 1 << 6 {
        b[0] = n as u8;
        1
    } else if n < 1 << 14 {
        b[0] = 0x40 | (n >> 8) as u8;
        b[1] = n as u8;
        2
    } else if n <= u64::from(u32::MAX) {
        b[0] = 0x80;
        b[1..5].copy_from_slice(&(n as u32).to_be_bytes());
        5
    } else {
        b[0] = 0x81;
        b[1..9].copy_from_slice(&n.to_be_bytes());
        9
    };
    (b, k)
}

/// Bytes [`put_len`] takes for `n`.
fn len_size(n: u64) -> usize {
    if n < 1 << 6 {
        1
    } else if n < 1 << 14 {
        2
    } else if n <= u64::from(u32::MAX) {
        5
    } else {
        9
    }
}

/// Appends `body` to `out` with each string of `spans` LZF-compressed
/// where that saves at least 4 bytes, as `rdbSaveLzfStringObject` decides
/// (and otherwise raw, as written).
fn put_compressed(out: &mut Vec<u8>, body: &[u8], spans: &[(usize, usize)]) {
    let mut pos = 0;
    for &(start, len) in spans {
        let payload = start + len_size(len as u64);
        let s = &body[payload..payload + len];
        out.extend_from_slice(&body[pos..start]);
        pos = payload + len;
        // Compressed straight into `out`, behind room for the header:
        // `0xc3`, the compressed length (at most `len - 4`, so at most
        // that many bytes) and the length. If the string does not
        // compress, it is cut off again and the raw form appended.
        let head = out.len();
        let (ulen, ulen_n) = len_bytes(len as u64);
        let room = 1 + len_size((len - 4) as u64) + ulen_n;
        out.resize(head + room, 0);
        if crate::lzf::compress(s, out, len - 4) {
            let clen = out.len() - head - room;
            let (c, c_n) = len_bytes(clen as u64);
            out[head] = ENC_LZF;
            out[head + 1..head + 1 + c_n].copy_from_slice(&c[..c_n]);
            out[head + 1 + c_n..head + 1 + c_n + ulen_n].copy_from_slice(&ulen[..ulen_n]);
            let used = 1 + c_n + ulen_n;
            if used < room {
                out.copy_within(head + room.., head + used);
                out.truncate(out.len() - (room - used));
            }
        } else {
            out.truncate(head);
            out.extend_from_slice(&body[start..pos]);
        }
    }
    out.extend_from_slice(&body[pos..]);
}

fn put_aux(out: &mut Vec<u8>, key: &str, value: &str) {
    out.push(OPCODE_AUX);
    put_string(out, key.as_bytes());
    put_string(out, value.as_bytes());
}

/// Appends one value's type byte, `key` and the value's payload.
pub fn put_entry(out: &mut Vec<u8>, key: &[u8], value: &Value) {
    let at = out.len();
    out.push(0);
    put_string(out, key);
    out[at] = put_value(out, value);
}

/// Appends a value's payload without its type byte and key, returning the
/// type byte it belongs under: what `rdbSaveObject` writes, shared by the
/// snapshot and `DUMP`.
pub fn put_value(out: &mut Vec<u8>, value: &Value) -> u8 {
    match value {
        Value::Str { bytes, .. } => {
            put_string(out, bytes);
            TYPE_STRING
        }
        Value::List(l) => {
            put_len(out, l.len() as u64);
            for e in l.iter() {
                put_string(out, e);
            }
            TYPE_LIST
        }
        Value::Set(s) => {
            put_len(out, s.len() as u64);
            for m in s.iter() {
                m.with_bytes(|b| put_string(out, b));
            }
            TYPE_SET
        }
        Value::Hash(h) => {
            put_len(out, h.len() as u64);
            for (f, v) in h.iter() {
                put_string(out, f);
                put_string(out, v);
            }
            TYPE_HASH
        }
        Value::Bloom(b) => {
            put_bloom(out, b);
            TYPE_MODULE_2
        }
        Value::Stream(st) => {
            put_stream(out, st);
            TYPE_STREAM_LISTPACKS_2
        }
        Value::ZSet(z) => {
            put_len(out, z.len() as u64);
            for (m, score) in z.iter() {
                put_string(out, m);
                out.extend_from_slice(&score.to_le_bytes());
            }
            TYPE_ZSET_2
        }
    }
}

/// Appends a Bloom filter as the module record [`BLOOM_MODULE_NAME`]:
/// items, sub-filter count, options and expansion, then per sub-filter its
/// capacity, error rate, hash count, bit count, items and bit bytes (the
/// fields of RedisBloom's `BFRdbSave`, in its order where they match).
fn put_bloom(out: &mut Vec<u8>, b: &ferrite_storage::Bloom) {
    put_len(out, module_type_id(BLOOM_MODULE_NAME, BLOOM_MODULE_ENCVER));
    let uint = |out: &mut Vec<u8>, n: u64| {
        put_len(out, MODULE_OPCODE_UINT);
        put_len(out, n);
    };
    let options = if b.is_nonscaling() {
        BLOOM_OPT_NO_SCALING
    } else {
        0
    };
    uint(out, b.items());
    uint(out, b.filters().len() as u64);
    uint(out, options);
    uint(out, b.expansion().unwrap_or(0));
    for f in b.filters() {
        let l = f.image();
        uint(out, l.capacity);
        put_len(out, MODULE_OPCODE_DOUBLE);
        out.extend_from_slice(&l.error.to_le_bytes());
        uint(out, u64::from(l.hashes));
        uint(out, l.nbits);
        uint(out, l.count);
        put_len(out, MODULE_OPCODE_STRING);
        put_string(out, &f.bit_bytes());
    }
    put_len(out, MODULE_OPCODE_EOF);
}

/// Appends a stream as Redis 7.0's `rdbSaveObject` does: one listpack per
/// node of live entries (keyed by its first entry's ID, which is its master
/// entry), then length, last/first/max-deleted IDs, `entries_added`, and
/// the consumer groups (name, last ID, `entries_read`, PEL with delivery
/// time and count, consumers with seen time and the IDs they own).
fn put_stream(out: &mut Vec<u8>, st: &ferrite_storage::Stream) {
    use ferrite_storage::StreamId;
    let mut nodes: Vec<Vec<(StreamId, &ferrite_storage::stream::Fields)>> = Vec::new();
    for (first, last) in st.node_ranges() {
        let v: Vec<_> = st.range(first, last).collect();
        if !v.is_empty() {
            nodes.push(v);
        }
    }
    put_len(out, nodes.len() as u64);
    for node in &nodes {
        let master = node[0].0;
        put_len(out, 16);
        out.extend_from_slice(&master.to_be_bytes());
        let lp = stream_listpack(master, node);
        put_len(out, lp.len() as u64);
        out.extend_from_slice(&lp);
    }
    put_len(out, st.len() as u64);
    for id in [st.last_id, st.first_id, st.max_deleted_entry_id] {
        put_len(out, id.ms);
        put_len(out, id.seq);
    }
    put_len(out, st.entries_added);
    put_len(out, st.groups.len() as u64);
    for (name, g) in &st.groups {
        put_string(out, name);
        put_len(out, g.last_id.ms);
        put_len(out, g.last_id.seq);
        // SCG_INVALID_ENTRIES_READ (-1) is saved as its two's complement.
        put_len(out, g.entries_read as u64);
        put_len(out, g.pel.len() as u64);
        for (id, n) in &g.pel {
            out.extend_from_slice(&id.to_be_bytes());
            out.extend_from_slice(&n.delivery_time.to_le_bytes());
            put_len(out, n.delivery_count);
        }
        put_len(out, g.consumers.len() as u64);
        for (cname, c) in &g.consumers {
            put_string(out, cname);
            out.extend_from_slice(&c.seen_time.to_le_bytes());
            put_len(out, c.pel.len() as u64);
            for id in &c.pel {
                out.extend_from_slice(&id.to_be_bytes());
            }
        }
    }
}

/// `STREAM_ITEM_FLAG_SAMEFIELDS`: the entry's fields are the master's.
const STREAM_ITEM_FLAG_SAMEFIELDS: i64 = 2;

/// One stream node as Redis's listpack (`listpack.c`, layout from
/// `t_stream.c`): the master entry (count, deleted, the first entry's field
/// names, 0), then per entry flags, ID deltas from the master, the values
/// (and field names plus their count when they differ from the master's)
/// and the entry's element count.
fn stream_listpack(
    master: ferrite_storage::StreamId,
    entries: &[(ferrite_storage::StreamId, &ferrite_storage::stream::Fields)],
) -> Vec<u8> {
    let mut lp = Listpack::default();
    let master_fields: Vec<&[u8]> = entries[0].1.iter().step_by(2).map(|f| &f[..]).collect();
    lp.int(entries.len() as i64);
    lp.int(0);
    lp.int(master_fields.len() as i64);
    for f in &master_fields {
        lp.string(f);
    }
    lp.int(0);
    for (id, fields) in entries {
        let names: Vec<&[u8]> = fields.iter().step_by(2).map(|f| &f[..]).collect();
        let same = names == master_fields;
        let numfields = names.len() as i64;
        lp.int(if same { STREAM_ITEM_FLAG_SAMEFIELDS } else { 0 });
        lp.int(id.ms.wrapping_sub(master.ms) as i64);
        lp.int(id.seq.wrapping_sub(master.seq) as i64);
        if same {
            for v in fields.iter().skip(1).step_by(2) {
                lp.string(v);
            }
            lp.int(numfields + 3);
        } else {
            lp.int(numfields);
            for x in fields.iter() {
                lp.string(x);
            }
            lp.int(2 * numfields + 4);
        }
    }
    lp.finish()
}

/// A listpack under construction (`listpack.c`'s encodings).
#[derive(Default)]
pub(crate) struct Listpack {
    body: Vec<u8>,
    count: usize,
}

impl Listpack {
    fn push_entry(&mut self, enc: &[u8]) {
        self.body.extend_from_slice(enc);
        // The back-length (`lpEncodeBacklen`, with its exact size
        // thresholds, which validation checks): the entry's size, 7 bits a
        // byte, most significant first, the high bit on all but the first.
        let l = enc.len() as u64;
        let bytes = match l {
            0..=127 => 1,
            128..=16382 => 2,
            16383..=2_097_150 => 3,
            2_097_151..=268_435_454 => 4,
            _ => 5,
        };
        for i in (0..bytes).rev() {
            let g = ((l >> (7 * i)) & 127) as u8;
            self.body.push(if i == bytes - 1 { g } else { g | 128 });
        }
        self.count += 1;
    }

    pub(crate) fn int(&mut self, v: i64) {
        let mut e = Vec::with_capacity(9);
        if (0..=127).contains(&v) {
            e.push(v as u8);
        } else if (-4096..=4095).contains(&v) {
            let u = (v as u64) & 0x1fff;
            e.push(0xC0 | (u >> 8) as u8);
            e.push(u as u8);
        } else if (-32768..=32767).contains(&v) {
            e.push(0xF1);
            e.extend_from_slice(&(v as i16).to_le_bytes());
        } else if (-8_388_608..=8_388_607).contains(&v) {
            e.push(0xF2);
            e.extend_from_slice(&(v as i32).to_le_bytes()[..3]);
        } else if (i64::from(i32::MIN)..=i64::from(i32::MAX)).contains(&v) {
            e.push(0xF3);
            e.extend_from_slice(&(v as i32).to_le_bytes());
        } else {
            e.push(0xF4);
            e.extend_from_slice(&v.to_le_bytes());
        }
        self.push_entry(&e);
    }

    pub(crate) fn string(&mut self, s: &[u8]) {
        let mut e = Vec::with_capacity(s.len() + 5);
        let n = s.len();
        if n < 64 {
            e.push(0x80 | n as u8);
        } else if n < 4096 {
            e.push(0xE0 | (n >> 8) as u8);
            e.push(n as u8);
        } else {
            e.push(0xF0);
            e.extend_from_slice(&(n as u32).to_le_bytes());
        }
        e.extend_from_slice(s);
        self.push_entry(&e);
    }

    pub(crate) fn finish(self) -> Vec<u8> {
        let total = 6 + self.body.len() + 1;
        let mut out = Vec::with_capacity(total);
        out.extend_from_slice(&(total as u32).to_le_bytes());
        out.extend_from_slice(&(self.count.min(65535) as u16).to_le_bytes());
        out.extend_from_slice(&self.body);
        out.push(0xFF);
        out
    }
}

/// Where a snapshot stands in the replication stream (Redis's
/// `rdbSaveInfo`), saved as the `repl-stream-db`, `repl-id` and
/// `repl-offset` AUX fields: a server restarted from the file continues
/// that history, so its replicas (or, for a replica, its primary) can
/// resume with a partial resync.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReplInfo {
    /// The database the stream had selected at `offset`.
    pub stream_db: usize,
    pub replid: String,
    pub offset: u64,
}

/// The RDB header and AUX fields Redis 7.0 writes first.
fn put_header(out: &mut Vec<u8>, now_ms: i64, used_mem: u64, repl: Option<&ReplInfo>) {
    out.extend_from_slice(RDB_VERSION);
    put_aux(out, "redis-ver", REDIS_VER);
    put_aux(out, "redis-bits", "64");
    put_aux(out, "ctime", &(now_ms / 1000).to_string());
    put_aux(out, "used-mem", &used_mem.to_string());
    if let Some(r) = repl {
        put_aux(out, "repl-stream-db", &r.stream_db.to_string());
        put_aux(out, "repl-id", &r.replid);
        put_aux(out, "repl-offset", &r.offset.to_string());
    }
    put_aux(out, "aof-base", "0");
}

/// Appends `EOF` and the CRC-64 of everything before it (little-endian).
fn put_trailer(out: &mut Vec<u8>) {
    out.push(OPCODE_EOF);
    let crc = crc64(0, out);
    out.extend_from_slice(&crc.to_le_bytes());
}

/// An RDB file without its `EOF` and checksum (a pass over the whole
/// file, made once it is assembled).
pub struct Unsealed(Vec<u8>);

impl Unsealed {
    /// Appends `EOF` and the checksum: the complete file.
    pub fn seal(mut self) -> Vec<u8> {
        put_trailer(&mut self.0);
        self.0
    }
}

/// Each shard body's length in the last snapshot, by part (`database *
/// shards + shard`): what the next one's buffers are sized by.
static LAST_PARTS: std::sync::Mutex<Vec<usize>> = std::sync::Mutex::new(Vec::new());

/// Buffers for a snapshot's shard bodies, made before its caller takes
/// the shards ([`buffers`]).
pub struct Buffers(Vec<Vec<u8>>);

/// A buffer per shard with room for its last body and a little more, so
/// no growth copies a body while its shard is held. Reserved, not
/// touched: writing 100 MB of pages here, in the command that starts the
/// snapshot, stalled every client of its worker for 70-100 ms, while the
/// page faults spread over the captures cost each shard's about 1 ms per
/// million small keys. Never more than `used_mem` in all (the dataset may
/// have shrunk since).
pub fn buffers(store: &Store, used_mem: u64) -> Buffers {
    let parts = store.db_count() * store.db(0).shard_count();
    let last = LAST_PARTS.lock().map(|l| l.clone()).unwrap_or_default();
    let mut budget = usize::try_from(used_mem).unwrap_or(usize::MAX);
    let bufs = (0..parts)
        .map(|k| {
            let l = last.get(k).copied().unwrap_or(0);
            let n = (l + l / 8).min(budget);
            budget -= n;
            Vec::with_capacity(n)
        })
        .collect();
    Buffers(bufs)
}

/// A shard's body, raw, and where its compressible strings are.
struct Part {
    body: Vec<u8>,
    spans: Vec<(usize, usize)>,
}

/// What the armed captures of one snapshot fill in.
struct Job {
    now_ms: i64,
    /// Keys whose TTL passed are kept (see [`put_shard`]).
    keep_expired: bool,
    /// Whether strings are compressed (`rdbcompression`).
    compress: bool,
    /// Shard bodies by part (`database * shards + shard`), each with its
    /// strings to compress ([`SPANS`]).
    parts: Box<[std::sync::OnceLock<Part>]>,
    /// Set when the snapshot is dropped uncollected: captures still armed
    /// then do nothing.
    dropped: std::sync::atomic::AtomicBool,
}

/// A snapshot armed at a point in time and not yet collected ([`arm`]).
pub struct Pending {
    job: std::sync::Arc<Job>,
    dbs: ferrite_storage::Databases,
    shards: usize,
    /// Header, AUX fields and function libraries.
    head: Vec<u8>,
    /// Databases with keys: (index, keys, keys with a TTL), as they were.
    sizes: Vec<(usize, u64, u64)>,
    /// Whether [`Pending::collect`] visited every shard.
    visited: bool,
}

/// A snapshot that lacks a shard: its capture never ran to the end (it
/// panicked on the thread that locked the shard).
#[derive(Debug, thiserror::Error)]
#[error("snapshot incomplete: shard {shard} of database {db} was not captured")]
pub struct Incomplete {
    pub db: usize,
    pub shard: usize,
}

/// Arms a snapshot of `store` as it is now; the caller holds every shard
/// (`Store::with_locked`), which makes "now" one point in time. Only the
/// header is written here: each shard is serialized later, by whoever
/// locks it first ([`ferrite_storage::Shard::arm_capture`]), and
/// [`Pending::collect`] assembles the file. Keys whose TTL passed at
/// `now_ms` are left out of a file without a replication history (`repl`).
/// `compress`: `rdbcompression`, read before taking the shards.
#[allow(clippy::too_many_arguments)]
pub fn arm(
    store: &Store,
    bufs: Buffers,
    compress: bool,
    now_ms: i64,
    used_mem: u64,
    libraries: &[bytes::Bytes],
    repl: Option<&ReplInfo>,
) -> Pending {
    let mut head = Vec::new();
    put_header(&mut head, now_ms, used_mem, repl);
    // Function libraries come before the keys, as `rdbSaveRio` writes them.
    for code in libraries {
        head.push(OPCODE_FUNCTION2);
        put_string(&mut head, code);
    }
    let shards = store.db(0).shard_count();
    let job = std::sync::Arc::new(Job {
        now_ms,
        keep_expired: repl.is_some(),
        compress,
        parts: (0..store.db_count() * shards)
            .map(|_| std::sync::OnceLock::new())
            .collect(),
        dropped: std::sync::atomic::AtomicBool::new(false),
    });
    let mut bufs = bufs.0;
    let mut sizes = Vec::new();
    for d in 0..store.db_count() {
        let db = store.db(d);
        let keys = db.len() as u64;
        if keys == 0 {
            continue;
        }
        sizes.push((d, keys, db.volatile_len() as u64));
        for i in 0..shards {
            let k = d * shards + i;
            let mut buf = bufs.get_mut(k).map(std::mem::take).unwrap_or_default();
            let job = job.clone();
            db.arm_at(
                i,
                Box::new(move |s| {
                    if job.dropped.load(std::sync::atomic::Ordering::Relaxed) {
                        return;
                    }
                    let recording = Recording::start(job.compress);
                    put_shard(&mut buf, s, job.now_ms, job.keep_expired);
                    let spans = recording.finish();
                    let _ = job.parts[k].set(Part { body: buf, spans });
                }),
            );
        }
    }
    Pending {
        job,
        dbs: store.databases(),
        shards,
        head,
        sizes,
        visited: false,
    }
}

/// Gives up a snapshot from elsewhere ([`Pending::canceller`]): its
/// captures not yet run do nothing from then on (a `FLUSHALL` that is
/// about to lock every shard need not serialize them first).
pub struct Canceller(std::sync::Arc<Job>);

impl Canceller {
    /// The captures still armed return at once; the snapshot will be
    /// [`Incomplete`].
    pub fn cancel(&self) {
        self.0
            .dropped
            .store(true, std::sync::atomic::Ordering::Relaxed);
    }
}

impl Pending {
    /// A handle that can give this snapshot up while its thread collects.
    pub fn canceller(&self) -> Canceller {
        Canceller(self.job.clone())
    }

    /// Visits every armed shard, which captures those nobody has locked
    /// since [`arm`] (waiting for each one's lock in turn).
    /// Backwards: readers that go through every shard in order (`INFO`,
    /// `DBSIZE`, `SCAN`, `KEYS`) meet this thread once, waiting for at most
    /// one shard's capture. Going the same way, a reader that waited for
    /// shard `k` would find `k + 1` taken again, and so on to the end.
    fn visit(&mut self) {
        for &(d, _, _) in self.sizes.iter().rev() {
            let db = self.dbs.db(d);
            for i in (0..self.shards).rev() {
                db.with_shard_at(i, |_| {});
            }
        }
        self.visited = true;
    }

    /// Captures the shards nobody has touched since [`arm`], then
    /// assembles the file.
    pub fn collect(mut self) -> Result<Unsealed, Incomplete> {
        self.visit();
        let mut lens = vec![0; self.job.parts.len()];
        let body: usize = self
            .job
            .parts
            .iter()
            .map(|p| p.get().map_or(0, |p| p.body.len()))
            .sum();
        let mut out = Vec::with_capacity(self.head.len() + body + 64 * self.sizes.len() + 9);
        out.append(&mut self.head);
        for &(d, keys, volatile) in &self.sizes {
            // Sizes before the keys, as Redis's `rdbSaveDb` writes them (a
            // hint for the loader's tables; keys whose TTL passed count).
            out.push(OPCODE_SELECTDB);
            put_len(&mut out, d as u64);
            out.push(OPCODE_RESIZEDB);
            put_len(&mut out, keys);
            put_len(&mut out, volatile);
            for i in 0..self.shards {
                let k = d * self.shards + i;
                let part = self.job.parts[k]
                    .get()
                    .ok_or(Incomplete { db: d, shard: i })?;
                if part.spans.is_empty() {
                    out.extend_from_slice(&part.body);
                } else {
                    put_compressed(&mut out, &part.body, &part.spans);
                }
                lens[k] = part.body.len();
            }
        }
        if let Ok(mut last) = LAST_PARTS.lock() {
            *last = lens;
        }
        Ok(Unsealed(out))
    }
}

impl Drop for Pending {
    fn drop(&mut self) {
        // Captures armed and not yet run have nothing to do any more.
        self.job
            .dropped
            .store(true, std::sync::atomic::Ordering::Relaxed);
        // Given up before its collection (a thread that did not start):
        // clear them now, or shards nobody locks would keep them (and
        // their buffers), and the expiry cycle would keep passing those
        // shards by. Not while unwinding, which may hold shards.
        if !self.visited && !std::thread::panicking() {
            self.visit();
        }
    }
}

/// One shard's keys in RDB form.
fn put_shard(body: &mut Vec<u8>, s: &ferrite_storage::Shard, now_ms: i64, keep_expired: bool) {
    for (key, e) in s.iter() {
        if e.expire_at != NO_EXPIRE {
            // A file that carries a replication history keeps keys whose
            // TTL passed, as Redis writes them: the server that loads it to
            // continue that history sends their `DEL`s to its replicas,
            // which may still hold them. Other files leave them out.
            if e.expire_at <= now_ms && !keep_expired {
                continue;
            }
            body.push(OPCODE_EXPIRETIME_MS);
            body.extend_from_slice(&e.expire_at.to_le_bytes());
        }
        put_entry(body, key, &e.value);
    }
}

/// Serializes every key of `store` into a complete RDB file, with `repl`
/// as its replication history. A point in time only if nothing else
/// changes the store meanwhile (tests, a server not yet serving).
pub fn dump(
    store: &Store,
    compress: bool,
    now_ms: i64,
    used_mem: u64,
    libraries: &[bytes::Bytes],
    repl: Option<&ReplInfo>,
) -> Vec<u8> {
    let bufs = Buffers(Vec::new());
    arm(store, bufs, compress, now_ms, used_mem, libraries, repl)
        .collect()
        .expect("a capture panicked")
        .seal()
}

#[cfg(test)]
mod tests {
    use super::*;
    use ferrite_storage::NoObserver;
    use std::sync::Arc;

    /// `rdbcompression yes` compresses the strings that shrink by 4 bytes
    /// or more, keys and values alike, and leaves the rest raw.
    #[test]
    fn compression_applies_to_long_compressible_strings_only() {
        let store = Store::new(1, 4, Arc::new(NoObserver));
        let long = b"value:12345 ".repeat(8);
        for (k, v) in [
            (
                &b"a-compressible-key-name-a-compressible-key-name"[..],
                &long[..],
            ),
            (b"short", b"tiny"),
            (b"noise", b"q8#Zp2!vL0x@Rm4&Tn6^Kb"),
        ] {
            store
                .db(0)
                .with_shard(k, |s| s.set(k, Value::string(v.to_vec()), -1, 0));
        }
        let raw = dump(&store, false, 0, 0, &[], None);
        let packed = dump(&store, true, 0, 0, &[], None);
        assert!(
            packed.len() + 60 < raw.len(),
            "{} vs {}",
            packed.len(),
            raw.len()
        );
        let find = |f: &[u8], s: &[u8]| f.windows(s.len()).any(|w| w == s);
        assert!(find(&packed, b"tiny") && find(&packed, b"q8#Zp2!vL0x@Rm4&Tn6^Kb"));
        assert!(!find(&packed, &long));
        // Both files load to the same keys.
        let keys = |file: &[u8]| {
            let mut got = Vec::new();
            crate::rdb_load::load(file, 1, &Default::default(), |k| {
                got.push((k.key, k.value.as_str().map(<[u8]>::to_vec)))
            })
            .unwrap();
            got.sort();
            got
        };
        assert_eq!(keys(&packed), keys(&raw));
        assert_eq!(keys(&raw).len(), 3);
        // The recording stopped with the capture.
        assert!(SPANS.with(|sp| sp.borrow().is_none()));
    }

    /// A capture that panics does not leave its thread recording spans.
    #[test]
    fn a_panicking_capture_stops_recording() {
        let r = std::panic::catch_unwind(|| {
            let _recording = Recording::start(true);
            put_string(&mut Vec::new(), &[b'x'; 40]);
            panic!("inside a capture");
        });
        assert!(r.is_err());
        assert!(SPANS.with(|sp| sp.borrow().is_none()));
    }

    /// A snapshot given up before its collection leaves no capture armed:
    /// untouched shards would keep them, and the expiry cycle skips
    /// shards that have them.
    #[test]
    fn a_pending_snapshot_dropped_uncollected_disarms_every_shard() {
        let store = Store::new(2, 8, Arc::new(NoObserver));
        let db = store.db(1);
        for i in 0..100 {
            let k = format!("k{i}");
            db.with_shard(k.as_bytes(), |s| {
                s.set(k.as_bytes(), Value::string(b"v".to_vec()), -1, 0)
            });
        }
        let armed = |store: &Store| {
            (0..8)
                .filter(|&i| store.db(1).peek_at(i, |s| s.has_captures()))
                .count()
        };
        let pending = arm(&store, Buffers(Vec::new()), false, 0, 0, &[], None);
        assert_eq!(armed(&store), 8);
        drop(pending);
        assert_eq!(armed(&store), 0);
        // Collected, the file holds every key once.
        let file = dump(&store, false, 0, 0, &[], None);
        assert_eq!(armed(&store), 0);
        // "k0".."k9" and "k10".."k99", each behind its length byte.
        let keys = file
            .windows(2)
            .filter(|w| *w == b"\x02k" || *w == b"\x03k")
            .count();
        assert_eq!(keys, 100);
    }

    #[test]
    fn crc64_matches_redis_test_vector() {
        assert_eq!(crc64(0, b"123456789"), 0xe9c6_d914_c4b8_d9ca);
        // Incremental use gives the same result.
        assert_eq!(crc64(crc64(0, b"1234"), b"56789"), 0xe9c6_d914_c4b8_d9ca);
    }

    #[test]
    fn lengths_use_redis_forms() {
        let enc = |n| {
            let mut v = Vec::new();
            put_len(&mut v, n);
            v
        };
        assert_eq!(enc(0), [0x00]);
        assert_eq!(enc(63), [0x3f]);
        assert_eq!(enc(64), [0x40, 0x40]);
        assert_eq!(enc(16383), [0x7f, 0xff]);
        assert_eq!(enc(16384), [0x80, 0, 0, 0x40, 0]);
        assert_eq!(enc(u64::from(u32::MAX)), [0x80, 0xff, 0xff, 0xff, 0xff]);
        assert_eq!(enc(1 << 32), [0x81, 0, 0, 0, 1, 0, 0, 0, 0]);
    }

    #[test]
    fn strings_are_raw_or_integer_encoded() {
        let enc = |s: &[u8]| {
            let mut v = Vec::new();
            put_string(&mut v, s);
            v
        };
        assert_eq!(enc(b"abc"), b"\x03abc");
        assert_eq!(enc(b""), b"\x00");
        assert_eq!(enc(b"12"), [ENC_INT8, 12]);
        assert_eq!(enc(b"-1"), [ENC_INT8, 0xff]);
        assert_eq!(enc(b"1000"), [ENC_INT16, 0xe8, 0x03]);
        assert_eq!(enc(b"100000"), [ENC_INT32, 0xa0, 0x86, 0x01, 0x00]);
        // Not canonical, or beyond 32 bits: raw.
        assert_eq!(enc(b"012"), b"\x03012");
        assert_eq!(enc(b"+1"), b"\x02+1");
        assert_eq!(enc(b"10000000000"), b"\x0b10000000000");
        let long = vec![b'x'; 100];
        let e = enc(&long);
        assert_eq!(&e[..2], &[0x40, 100]);
        assert_eq!(&e[2..], &long[..]);
    }

    /// Reads back the subset of the format the writer produces, so the
    /// shape of a whole file is checked without a real Redis.
    struct Reader<'a>(&'a [u8]);

    impl Reader<'_> {
        fn byte(&mut self) -> u8 {
            let b = self.0[0];
            self.0 = &self.0[1..];
            b
        }
        fn take(&mut self, n: usize) -> Vec<u8> {
            let (a, b) = self.0.split_at(n);
            self.0 = b;
            a.to_vec()
        }
        fn len(&mut self) -> (u64, Option<u8>) {
            let b = self.byte();
            match b >> 6 {
                0 => (u64::from(b & 0x3f), None),
                1 => (u64::from(b & 0x3f) << 8 | u64::from(self.byte()), None),
                2 if b == 0x80 => (
                    u64::from(u32::from_be_bytes(self.take(4).try_into().unwrap())),
                    None,
                ),
                2 => (u64::from_be_bytes(self.take(8).try_into().unwrap()), None),
                _ => (0, Some(b)),
            }
        }
        fn string(&mut self) -> Vec<u8> {
            match self.len() {
                (n, None) => self.take(n as usize),
                (_, Some(ENC_INT8)) => (self.byte() as i8).to_string().into_bytes(),
                (_, Some(ENC_INT16)) => i16::from_le_bytes(self.take(2).try_into().unwrap())
                    .to_string()
                    .into_bytes(),
                (_, Some(ENC_INT32)) => i32::from_le_bytes(self.take(4).try_into().unwrap())
                    .to_string()
                    .into_bytes(),
                (_, Some(e)) => panic!("unexpected encoding {e:#x}"),
            }
        }
    }

    /// (expiry, key, value) of one string key read back.
    type KeyRow = (Option<i64>, Vec<u8>, Vec<u8>);

    #[test]
    fn round_trip_shape() {
        let store = Store::new(16, 4, Arc::new(NoObserver));
        let now = 1_700_000_000_000;
        store.db(0).with_shard(b"s", |s| {
            s.set(b"s", Value::string("hello"), NO_EXPIRE, now)
        });
        store
            .db(0)
            .with_shard(b"n", |s| s.set(b"n", Value::string("42"), now + 5000, now));
        store.db(0).with_shard(b"gone", |s| {
            s.set(b"gone", Value::string("x"), now - 1, now - 10)
        });
        store
            .db(3)
            .with_shard(b"s3", |s| s.set(b"s3", Value::string("v"), NO_EXPIRE, now));
        let rdb = dump(&store, false, now, 0, &[], None);
        assert_eq!(&rdb[..9], b"REDIS0010");
        let (body, crc) = rdb.split_at(rdb.len() - 8);
        assert_eq!(crc64(0, body), u64::from_le_bytes(crc.try_into().unwrap()));
        let mut r = Reader(&body[9..]);
        let mut aux = Vec::new();
        let mut dbs: Vec<(u64, u64, u64, Vec<KeyRow>)> = Vec::new();
        let mut expire = None;
        loop {
            match r.byte() {
                OPCODE_AUX => {
                    let k = String::from_utf8(r.string()).unwrap();
                    r.string();
                    aux.push(k);
                }
                OPCODE_SELECTDB => dbs.push((r.len().0, 0, 0, Vec::new())),
                OPCODE_RESIZEDB => {
                    let d = dbs.last_mut().unwrap();
                    d.1 = r.len().0;
                    d.2 = r.len().0;
                }
                OPCODE_EXPIRETIME_MS => {
                    expire = Some(i64::from_le_bytes(r.take(8).try_into().unwrap()))
                }
                TYPE_STRING => {
                    let k = r.string();
                    let v = r.string();
                    dbs.last_mut().unwrap().3.push((expire.take(), k, v));
                }
                OPCODE_EOF => break,
                t => panic!("unexpected opcode {t}"),
            }
        }
        assert!(r.0.is_empty());
        assert_eq!(
            aux,
            ["redis-ver", "redis-bits", "ctime", "used-mem", "aof-base"]
        );
        assert_eq!(dbs.len(), 2);
        let (d0, keys0, exp0, mut e0) = dbs.remove(0);
        // RESIZEDB gives the table sizes, the expired key included (as
        // Redis's `dictSize`); the key itself is left out.
        assert_eq!((d0, keys0, exp0), (0, 3, 2));
        e0.sort();
        assert_eq!(
            e0,
            vec![
                (None, b"s".to_vec(), b"hello".to_vec()),
                (Some(now + 5000), b"n".to_vec(), b"42".to_vec()),
            ]
        );
        assert_eq!(dbs[0].0, 3);
        assert_eq!(dbs[0].3, vec![(None, b"s3".to_vec(), b"v".to_vec())]);
    }
}
