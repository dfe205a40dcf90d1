//! An RDB reader for the files Redis 7.0 writes (RDB versions 1 to 10),
//! so a Ferrite replica can load the snapshot a primary sends, whether the
//! primary is Ferrite (plain types, see `crate::rdb`) or a real Redis
//! (compact encodings: intsets, listpacks, ziplists, quicklists, LZF
//! strings).
//!
//! The reader never panics on its input: every malformed byte sequence is
//! a [`LoadError`], a value type it does not know is
//! [`LoadError::UnsupportedType`] and a module value other than Ferrite's
//! Bloom filters is [`LoadError::UnknownModule`], which fail the sync
//! cleanly. To add a
//! type, decode it in [`Reader::value`] under its `RDB_TYPE_*` number.
//!
//! It depends on `ferrite_storage`'s value types only, not on the server:
//! keys are handed to a sink, which decides where they go.

use ferrite_storage::stream::{Consumer, Fields, Nack};
use ferrite_storage::{
    ConsumerGroup, EncodingLimits, Hash, List, Set, Stream, StreamId, Value, ZSet, NO_EXPIRE,
};
use thiserror::Error;

/// Why a snapshot could not be loaded.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum LoadError {
    #[error("wrong signature trying to load DB from file")]
    BadSignature,
    #[error("can't handle RDB format version {0}")]
    BadVersion(u32),
    #[error("unexpected end of RDB data")]
    Truncated,
    #[error("wrong RDB checksum (expected {expected:#018x}, got {got:#018x})")]
    Checksum { expected: u64, got: u64 },
    #[error("unknown RDB string encoding type {0}")]
    BadStringEncoding(u8),
    #[error("invalid LZF compressed string")]
    BadLzf,
    #[error("unsupported RDB value type {0} (key {1:?})")]
    UnsupportedType(u8, String),
    #[error("The RDB file contains module data I can't load: no matching module type '{0}'")]
    UnknownModule(String),
    #[error("module auxiliary data (opcode 247) cannot be loaded without the module")]
    ModuleAux,
    #[error("unsupported RDB opcode {0}")]
    UnsupportedOpcode(u8),
    #[error("corrupt {0} encoding")]
    Corrupt(&'static str),
    #[error("database index {0} out of range")]
    DbIndex(u64),
    #[error("Failed loading library: {0}")]
    Library(String),
}

/// Result alias of this module.
pub type Result<T> = std::result::Result<T, LoadError>;

/// One key read from the snapshot.
pub struct LoadedKey {
    pub db: usize,
    pub key: Vec<u8>,
    pub value: Value,
    /// Absolute unix ms, or [`NO_EXPIRE`].
    pub expire_at: i64,
}

/// What the snapshot said about itself beyond its keys.
#[derive(Debug, Default)]
pub struct LoadInfo {
    /// AUX fields, in file order.
    pub aux: Vec<(Vec<u8>, Vec<u8>)>,
    /// The code of each function library (`FUNCTION2`), in file order.
    pub libraries: Vec<Vec<u8>>,
    /// Bytes the snapshot took, checksum included: an old-style AOF goes
    /// on with commands after its RDB preamble.
    pub consumed: usize,
}

/// A snapshot read for installing: its keys, and its function libraries
/// compiled and checked, so a library that does not load fails the load
/// before the dataset is touched (Redis refuses such a file too).
pub struct Loaded {
    pub keys: Vec<LoadedKey>,
    pub libraries: crate::scripting::functions::Libraries,
    /// Bytes of `data` the snapshot took ([`LoadInfo::consumed`]).
    pub consumed: usize,
    /// The replication history the file was saved at, when it says.
    pub repl: Option<crate::rdb::ReplInfo>,
}

impl LoadInfo {
    /// The `repl-*` AUX fields, when all three are there and valid (Redis
    /// ignores a `repl-stream-db` of -1, which old versions wrote).
    pub fn repl(&self) -> Option<crate::rdb::ReplInfo> {
        let field = |name: &str| {
            self.aux
                .iter()
                .rev()
                .find(|(k, _)| k == name.as_bytes())
                .and_then(|(_, v)| std::str::from_utf8(v).ok())
        };
        let replid = field("repl-id").filter(|id| id.len() == 40)?;
        Some(crate::rdb::ReplInfo {
            stream_db: field("repl-stream-db")?.parse().ok()?,
            replid: replid.to_string(),
            offset: field("repl-offset")?.parse().ok()?,
        })
    }
}

const TYPE_STRING: u8 = 0;
const TYPE_LIST: u8 = 1;
const TYPE_SET: u8 = 2;
const TYPE_ZSET: u8 = 3;
const TYPE_HASH: u8 = 4;
const TYPE_ZSET_2: u8 = 5;
use crate::rdb::TYPE_MODULE_2;
const TYPE_LIST_ZIPLIST: u8 = 10;
const TYPE_SET_INTSET: u8 = 11;
const TYPE_ZSET_ZIPLIST: u8 = 12;
const TYPE_HASH_ZIPLIST: u8 = 13;
const TYPE_LIST_QUICKLIST: u8 = 14;
const TYPE_HASH_LISTPACK: u8 = 16;
const TYPE_ZSET_LISTPACK: u8 = 17;
const TYPE_LIST_QUICKLIST_2: u8 = 18;
const TYPE_STREAM_LISTPACKS: u8 = 15;
const TYPE_STREAM_LISTPACKS_2: u8 = 19;
/// Redis 7.2's: consumers carry an active time too (read and dropped, as
/// 7.0 has none).
const TYPE_STREAM_LISTPACKS_3: u8 = 21;

/// `STREAM_ITEM_FLAG_DELETED` / `_SAMEFIELDS` of a stream listpack entry.
const STREAM_FLAG_DELETED: i64 = 1;
const STREAM_FLAG_SAMEFIELDS: i64 = 2;

const OPCODE_FUNCTION2: u8 = 245;
const OPCODE_FUNCTION: u8 = 246;
const OPCODE_MODULE_AUX: u8 = 247;
const OPCODE_IDLE: u8 = 248;
const OPCODE_FREQ: u8 = 249;
const OPCODE_AUX: u8 = 250;
const OPCODE_RESIZEDB: u8 = 251;
const OPCODE_EXPIRETIME_MS: u8 = 252;
const OPCODE_EXPIRETIME: u8 = 253;
const OPCODE_SELECTDB: u8 = 254;
const OPCODE_EOF: u8 = 255;

const ENC_INT8: u8 = 0;
const ENC_INT16: u8 = 1;
const ENC_INT32: u8 = 2;
const ENC_LZF: u8 = 3;

/// `QUICKLIST_NODE_CONTAINER_PLAIN` / `PACKED` in `LIST_QUICKLIST_2`.
const QL_PLAIN: u64 = 1;
const QL_PACKED: u64 = 2;

/// Highest RDB version this reader knows (Redis 7.0's).
const MAX_VERSION: u32 = 10;

/// Reads a whole RDB file into a list of keys, with the server's database
/// count and encoding limits: the snapshot a start-up load, `DEBUG RELOAD`
/// or a replica's full resync then installs with every shard held.
pub fn load_for(srv: &crate::shared::Shared, data: &[u8]) -> Result<Loaded> {
    let limits = *srv.hot.enc.read();
    let delay = key_load_delay(srv);
    let mut keys = Vec::new();
    let info = load(data, srv.store.db_count(), &limits, |k| {
        keys.push(k);
        debug_delay(delay);
    })?;
    let repl = info.repl();
    let codes = info.libraries.into_iter().map(bytes::Bytes::from).collect();
    let libraries =
        crate::scripting::functions::Libraries::compile(srv, codes).map_err(LoadError::Library)?;
    Ok(Loaded {
        keys,
        libraries,
        consumed: info.consumed,
        repl,
    })
}

/// `key-load-delay`: what a load waits per key (Redis's debugging knob).
pub fn key_load_delay(srv: &crate::shared::Shared) -> i64 {
    srv.config
        .read()
        .value("key-load-delay")
        .parse()
        .unwrap_or(0)
}

/// Redis's `debugDelay`: sleeps `us` microseconds; a negative value
/// sleeps 1 µs once in `-us` calls on average.
#[inline]
pub fn debug_delay(us: i64) {
    let us = match us {
        0 => return,
        n if n < 0 => {
            use rand::Rng;
            u64::from(rand::thread_rng().gen_range(0..n.unsigned_abs()) == 0)
        }
        n => n as u64,
    };
    if us > 0 {
        std::thread::sleep(std::time::Duration::from_micros(us));
    }
}

/// The library codes of a `FUNCTION DUMP` payload (its footer checked and
/// cut off by the caller): `FUNCTION2` records only, as
/// `functionRestoreCommand` reads them.
pub fn function_payload(body: &[u8]) -> std::result::Result<Vec<Vec<u8>>, &'static str> {
    let limits = EncodingLimits::default();
    let mut r = Reader {
        data: body,
        pos: 0,
        limits: &limits,
    };
    let mut codes = Vec::new();
    while r.pos < body.len() {
        match r.byte().map_err(|_| "can not read data type")? {
            OPCODE_FUNCTION2 => codes.push(
                r.string()
                    .map_err(|_| "failed loading the given functions payload")?,
            ),
            OPCODE_FUNCTION => return Err("Pre-GA function format not supported"),
            _ => return Err("given type is not a function"),
        }
    }
    Ok(codes)
}

/// Reads a whole RDB file from `data`, handing each key to `sink`.
/// `databases` bounds `SELECTDB`; `limits` decide the loaded collections'
/// encodings, as Redis re-encodes at its own thresholds when loading.
pub fn load(
    data: &[u8],
    databases: usize,
    limits: &EncodingLimits,
    mut sink: impl FnMut(LoadedKey),
) -> Result<LoadInfo> {
    if data.len() < 9 || &data[..5] != b"REDIS" {
        return Err(LoadError::BadSignature);
    }
    let version: u32 = std::str::from_utf8(&data[5..9])
        .ok()
        .and_then(|s| s.parse().ok())
        .ok_or(LoadError::BadSignature)?;
    if version == 0 || version > MAX_VERSION {
        return Err(LoadError::BadVersion(version));
    }
    let mut r = Reader {
        data,
        pos: 9,
        limits,
    };
    let mut info = LoadInfo::default();
    let mut db = 0usize;
    let mut expire_at = NO_EXPIRE;
    loop {
        let op = r.byte()?;
        match op {
            OPCODE_EOF => break,
            OPCODE_SELECTDB => {
                let n = r.len()?;
                if n >= databases as u64 {
                    return Err(LoadError::DbIndex(n));
                }
                db = n as usize;
            }
            OPCODE_RESIZEDB => {
                r.len()?;
                r.len()?;
            }
            OPCODE_EXPIRETIME_MS => {
                expire_at = i64::from_le_bytes(r.array::<8>()?);
            }
            OPCODE_EXPIRETIME => {
                expire_at = i64::from(i32::from_le_bytes(r.array::<4>()?)) * 1000;
            }
            OPCODE_AUX => {
                let k = r.string()?;
                let v = r.string()?;
                info.aux.push((k, v));
            }
            OPCODE_IDLE => {
                // LRU idle seconds: access metadata only.
                r.len()?;
            }
            OPCODE_FREQ => {
                r.byte()?;
            }
            OPCODE_FUNCTION2 => info.libraries.push(r.string()?),
            OPCODE_FUNCTION => return Err(LoadError::UnsupportedOpcode(op)),
            OPCODE_MODULE_AUX => return Err(LoadError::ModuleAux),
            t => {
                let key = r.string()?;
                let value = r.value(t, &key)?;
                sink(LoadedKey {
                    db,
                    key,
                    value,
                    expire_at,
                });
                expire_at = NO_EXPIRE;
            }
        }
    }
    if version >= 5 {
        let body_end = r.pos;
        let got = u64::from_le_bytes(r.array::<8>()?);
        // A zero checksum means the writer had checksums disabled.
        if got != 0 {
            let expected = crate::rdb::crc64(0, &data[..body_end]);
            if expected != got {
                return Err(LoadError::Checksum { expected, got });
            }
        }
    }
    info.consumed = r.pos;
    Ok(info)
}

/// Decodes one serialized value as `RESTORE` receives it: a type byte and
/// the value's payload (what `DUMP` wrote before its version and checksum
/// footer, which the caller has checked). Bytes after the value are
/// ignored, as Redis does; an empty collection is refused as Redis's
/// `rdbLoadObject` does (`emptykey`).
pub fn load_value(payload: &[u8], limits: &EncodingLimits) -> Result<Value> {
    let mut r = Reader {
        data: payload,
        pos: 0,
        limits,
    };
    let t = r.byte()?;
    // The declared element count of the plain collection types, which
    // Redis refuses to load with duplicates ("Duplicate set members
    // detected") where our collections would silently merge them.
    let declared = match t {
        TYPE_SET | TYPE_ZSET | TYPE_ZSET_2 | TYPE_HASH => Some(r.clone_at().len()?),
        _ => None,
    };
    let v = r.value(t, b"")?;
    if v.is_empty() {
        return Err(LoadError::Corrupt("empty collection"));
    }
    if declared.is_some_and(|n| n != v.len() as u64) {
        return Err(LoadError::Corrupt("duplicate collection elements"));
    }
    Ok(v)
}

struct Reader<'a> {
    data: &'a [u8],
    pos: usize,
    limits: &'a EncodingLimits,
}

/// A length or, under the `11` prefix, a special string encoding.
enum Len {
    Plain(u64),
    Encoded(u8),
}

impl<'a> Reader<'a> {
    /// A second reader at the same position, to look ahead.
    fn clone_at(&self) -> Reader<'a> {
        Reader {
            data: self.data,
            pos: self.pos,
            limits: self.limits,
        }
    }

    fn take(&mut self, n: usize) -> Result<&'a [u8]> {
        let end = self.pos.checked_add(n).ok_or(LoadError::Truncated)?;
        let s = self.data.get(self.pos..end).ok_or(LoadError::Truncated)?;
        self.pos = end;
        Ok(s)
    }

    fn byte(&mut self) -> Result<u8> {
        Ok(self.take(1)?[0])
    }

    fn array<const N: usize>(&mut self) -> Result<[u8; N]> {
        let s = self.take(N)?;
        let mut a = [0u8; N];
        a.copy_from_slice(s);
        Ok(a)
    }

    fn len_or_enc(&mut self) -> Result<Len> {
        let b = self.byte()?;
        Ok(match b >> 6 {
            0 => Len::Plain(u64::from(b & 0x3f)),
            1 => Len::Plain(u64::from(b & 0x3f) << 8 | u64::from(self.byte()?)),
            2 => match b {
                0x80 => Len::Plain(u64::from(u32::from_be_bytes(self.array::<4>()?))),
                0x81 => Len::Plain(u64::from_be_bytes(self.array::<8>()?)),
                _ => return Err(LoadError::Corrupt("length")),
            },
            _ => Len::Encoded(b & 0x3f),
        })
    }

    fn len(&mut self) -> Result<u64> {
        match self.len_or_enc()? {
            Len::Plain(n) => Ok(n),
            Len::Encoded(_) => Err(LoadError::Corrupt("length")),
        }
    }

    /// A count of items to read, refused when the input cannot possibly
    /// hold that many (each item takes at least one byte), so a corrupt
    /// length never makes us reserve absurd memory.
    fn count(&mut self) -> Result<usize> {
        let n = self.len()?;
        if n > (self.data.len() - self.pos) as u64 {
            return Err(LoadError::Truncated);
        }
        Ok(n as usize)
    }

    fn string(&mut self) -> Result<Vec<u8>> {
        match self.len_or_enc()? {
            Len::Plain(n) => {
                let n = usize::try_from(n).map_err(|_| LoadError::Truncated)?;
                Ok(self.take(n)?.to_vec())
            }
            Len::Encoded(ENC_INT8) => Ok((self.byte()? as i8).to_string().into_bytes()),
            Len::Encoded(ENC_INT16) => Ok(i16::from_le_bytes(self.array::<2>()?)
                .to_string()
                .into_bytes()),
            Len::Encoded(ENC_INT32) => Ok(i32::from_le_bytes(self.array::<4>()?)
                .to_string()
                .into_bytes()),
            Len::Encoded(ENC_LZF) => {
                let clen = self.len()? as usize;
                let ulen = self.len()? as usize;
                let c = self.take(clen)?;
                crate::lzf::decompress(c, ulen).ok_or(LoadError::BadLzf)
            }
            Len::Encoded(e) => Err(LoadError::BadStringEncoding(e)),
        }
    }

    /// A `ZSET` (type 3) score: a length byte and ASCII, or 253/254/255
    /// for NaN, +inf and -inf.
    fn ascii_score(&mut self) -> Result<f64> {
        match self.byte()? {
            253 => Ok(f64::NAN),
            254 => Ok(f64::INFINITY),
            255 => Ok(f64::NEG_INFINITY),
            n => {
                let s = self.take(usize::from(n))?;
                std::str::from_utf8(s)
                    .ok()
                    .and_then(|t| t.parse::<f64>().ok())
                    .ok_or(LoadError::Corrupt("zset score"))
            }
        }
    }

    fn value(&mut self, t: u8, key: &[u8]) -> Result<Value> {
        let limits = self.limits;
        Ok(match t {
            TYPE_STRING => Value::string(self.string()?),
            TYPE_LIST => {
                let n = self.count()?;
                let mut l = List::new();
                for _ in 0..n {
                    l.push_back(&self.string()?);
                }
                Value::List(l)
            }
            TYPE_SET => {
                let n = self.count()?;
                let mut s = Set::new();
                for _ in 0..n {
                    s.add(&self.string()?, limits.set_max_intset_entries);
                }
                Value::Set(s)
            }
            TYPE_ZSET | TYPE_ZSET_2 => {
                let n = self.count()?;
                let mut items = Vec::with_capacity(n);
                for _ in 0..n {
                    let m = self.string()?;
                    let score = if t == TYPE_ZSET {
                        self.ascii_score()?
                    } else {
                        f64::from_le_bytes(self.array::<8>()?)
                    };
                    items.push((m, score));
                }
                zset_from(items, limits)?
            }
            TYPE_HASH => {
                let n = self.count()?;
                let mut h = Hash::new();
                for _ in 0..n {
                    let f = self.string()?;
                    let v = self.string()?;
                    h.set(&f, &v, limits);
                }
                Value::Hash(h)
            }
            TYPE_SET_INTSET => {
                let blob = self.string()?;
                let mut s = Set::new();
                for v in intset_entries(&blob)? {
                    s.add(v.to_string().as_bytes(), limits.set_max_intset_entries);
                }
                Value::Set(s)
            }
            TYPE_LIST_ZIPLIST => {
                let blob = self.string()?;
                let mut l = List::new();
                for e in ziplist_entries(&blob)? {
                    l.push_back(&e);
                }
                Value::List(l)
            }
            TYPE_LIST_QUICKLIST | TYPE_LIST_QUICKLIST_2 => {
                let nodes = self.count()?;
                let mut l = List::new();
                for _ in 0..nodes {
                    let container = if t == TYPE_LIST_QUICKLIST_2 {
                        self.len()?
                    } else {
                        QL_PACKED
                    };
                    let blob = self.string()?;
                    match container {
                        QL_PLAIN => l.push_back(&blob),
                        QL_PACKED if t == TYPE_LIST_QUICKLIST => {
                            for e in ziplist_entries(&blob)? {
                                l.push_back(&e);
                            }
                        }
                        QL_PACKED => {
                            for e in listpack_entries(&blob)? {
                                l.push_back(&e);
                            }
                        }
                        _ => return Err(LoadError::Corrupt("quicklist container")),
                    }
                }
                Value::List(l)
            }
            TYPE_HASH_ZIPLIST | TYPE_HASH_LISTPACK => {
                let blob = self.string()?;
                let items = if t == TYPE_HASH_LISTPACK {
                    listpack_entries(&blob)?
                } else {
                    ziplist_entries(&blob)?
                };
                if items.len() % 2 != 0 {
                    return Err(LoadError::Corrupt("hash listpack"));
                }
                let mut h = Hash::new();
                for p in items.chunks(2) {
                    h.set(&p[0], &p[1], limits);
                }
                Value::Hash(h)
            }
            TYPE_ZSET_ZIPLIST | TYPE_ZSET_LISTPACK => {
                let blob = self.string()?;
                let items = if t == TYPE_ZSET_LISTPACK {
                    listpack_entries(&blob)?
                } else {
                    ziplist_entries(&blob)?
                };
                if items.len() % 2 != 0 {
                    return Err(LoadError::Corrupt("zset listpack"));
                }
                let mut pairs = Vec::with_capacity(items.len() / 2);
                let mut it = items.into_iter();
                while let (Some(m), Some(s)) = (it.next(), it.next()) {
                    let score = std::str::from_utf8(&s)
                        .ok()
                        .and_then(listpack_score)
                        .ok_or(LoadError::Corrupt("zset listpack score"))?;
                    pairs.push((m, score));
                }
                zset_from(pairs, limits)?
            }
            // Streams (15, 19), module types (6, 7), zipmaps (9) and
            // anything newer: the sync fails and is retried.
            TYPE_STREAM_LISTPACKS | TYPE_STREAM_LISTPACKS_2 | TYPE_STREAM_LISTPACKS_3 => {
                Value::Stream(Box::new(self.stream(t)?))
            }
            TYPE_MODULE_2 => self.module()?,
            other => {
                return Err(LoadError::UnsupportedType(
                    other,
                    String::from_utf8_lossy(&key[..key.len().min(64)]).into_owned(),
                ))
            }
        })
    }
}

impl Reader<'_> {
    /// A module value: only Ferrite's Bloom filter type (any layout version
    /// up to ours) is known; any other module is refused by name, as Redis
    /// refuses a module it has not loaded.
    fn module(&mut self) -> Result<Value> {
        use crate::rdb::{module_type_name, BLOOM_MODULE_ENCVER, BLOOM_MODULE_NAME};
        let id = self.len()?;
        let (name, encver) = module_type_name(id);
        if name.as_bytes() != BLOOM_MODULE_NAME || encver > BLOOM_MODULE_ENCVER {
            return Err(LoadError::UnknownModule(name));
        }
        let bad = |_| LoadError::Corrupt("bloom filter");
        let items = self.module_uint()?;
        let nfilters = self.module_uint()?;
        let options = self.module_uint()?;
        let expansion = self.module_uint()?;
        if nfilters > (self.data.len() - self.pos) as u64 {
            return Err(LoadError::Truncated);
        }
        let mut links = Vec::with_capacity(nfilters as usize);
        for _ in 0..nfilters {
            let capacity = self.module_uint()?;
            let error = self.module_double()?;
            let hashes = u32::try_from(self.module_uint()?)
                .map_err(|_| LoadError::Corrupt("bloom filter"))?;
            let nbits = self.module_uint()?;
            let count = self.module_uint()?;
            let link = ferrite_storage::bloom::LinkImage {
                capacity,
                count,
                error,
                hashes,
                nbits,
            };
            if self.len()? != crate::rdb::MODULE_OPCODE_STRING {
                return Err(LoadError::Corrupt("module value"));
            }
            links.push((link, self.string()?));
        }
        if self.len()? != crate::rdb::MODULE_OPCODE_EOF {
            return Err(LoadError::Corrupt("module value"));
        }
        let links: Vec<_> = links.iter().map(|(l, b)| (*l, &b[..])).collect();
        let nonscaling = options & crate::rdb::BLOOM_OPT_NO_SCALING != 0;
        ferrite_storage::Bloom::from_image(items, expansion, nonscaling, &links)
            .map(|b| Value::Bloom(Box::new(b)))
            .map_err(bad)
    }

    /// A module value's unsigned field (`RDB_MODULE_OPCODE_UINT`).
    fn module_uint(&mut self) -> Result<u64> {
        if self.len()? != crate::rdb::MODULE_OPCODE_UINT {
            return Err(LoadError::Corrupt("module value"));
        }
        self.len()
    }

    /// A module value's double field (`RDB_MODULE_OPCODE_DOUBLE`, 8 bytes
    /// little endian).
    fn module_double(&mut self) -> Result<f64> {
        if self.len()? != crate::rdb::MODULE_OPCODE_DOUBLE {
            return Err(LoadError::Corrupt("module value"));
        }
        Ok(f64::from_le_bytes(self.array::<8>()?))
    }
}

impl Reader<'_> {
    /// A raw 128-bit stream ID (big endian, as Redis's rax keys).
    fn raw_id(&mut self) -> Result<StreamId> {
        Ok(id_from_be(self.array::<16>()?))
    }

    /// A stream ID as two lengths.
    fn len_id(&mut self) -> Result<StreamId> {
        let ms = self.len()?;
        let seq = self.len()?;
        Ok(StreamId::new(ms, seq))
    }

    /// A stream (`RDB_TYPE_STREAM_LISTPACKS`, `_2`, `_3`), read as Redis
    /// 7.0's `rdbLoadObject` does: listpack nodes keyed by their master
    /// ID, the length and IDs, then consumer groups with their global PEL
    /// and consumers owning parts of it.
    fn stream(&mut self, t: u8) -> Result<Stream> {
        let mut s = Stream::new();
        let nodes = self.count()?;
        for _ in 0..nodes {
            let key = self.string()?;
            let key: [u8; 16] = key
                .as_slice()
                .try_into()
                .map_err(|_| LoadError::Corrupt("stream node key"))?;
            let master = id_from_be(key);
            let lp = self.string()?;
            let node = stream_node(master, &lp)?;
            if !s.push_node(master, node.entries, node.total, lp.len(), node.last) {
                return Err(LoadError::Corrupt("stream (nodes out of order)"));
            }
        }
        let length = self.len()?;
        s.last_id = self.len_id()?;
        if t == TYPE_STREAM_LISTPACKS {
            // Redis 7.0 migrates an older stream: nothing known deleted,
            // every entry counted as added, the first ID from the entries
            // (the maximum ID when there are none, as `streamGetEdgeID`).
            s.max_deleted_entry_id = StreamId::MIN;
            s.entries_added = length;
            s.first_id = s.first().map(|e| e.0).unwrap_or(StreamId::MAX);
        } else {
            s.first_id = self.len_id()?;
            s.max_deleted_entry_id = self.len_id()?;
            s.entries_added = self.len()?;
        }
        if length != s.len() as u64 {
            return Err(LoadError::Corrupt(
                "stream (length differs from its entries)",
            ));
        }
        if s.last().is_some_and(|(id, _)| id > s.last_id) {
            return Err(LoadError::Corrupt("stream (entry after the last ID)"));
        }
        let groups = self.count()?;
        for _ in 0..groups {
            let name = self.string()?.into_boxed_slice();
            let last_id = self.len_id()?;
            let entries_read = if t == TYPE_STREAM_LISTPACKS {
                s.estimate_distance(last_id)
            } else {
                // SCG_INVALID_ENTRIES_READ (-1) is saved as its two's
                // complement.
                self.len()? as i64
            };
            let mut g = ConsumerGroup::new(last_id, entries_read);
            // The global PEL first, owners resolved by the consumers after.
            let mut pel: std::collections::BTreeMap<StreamId, LoadedNack> =
                std::collections::BTreeMap::new();
            let n = self.count()?;
            for _ in 0..n {
                let id = self.raw_id()?;
                let time = i64::from_le_bytes(self.array::<8>()?);
                let count = self.len()?;
                if pel.insert(id, (time, count, None)).is_some() {
                    return Err(LoadError::Corrupt("stream (duplicated global PEL entry)"));
                }
            }
            let consumers = self.count()?;
            for _ in 0..consumers {
                let cname = self.string()?.into_boxed_slice();
                let seen_time = i64::from_le_bytes(self.array::<8>()?);
                if t == TYPE_STREAM_LISTPACKS_3 {
                    // active-time: Redis 7.0 has no such field.
                    self.array::<8>()?;
                }
                let mut c = Consumer {
                    seen_time,
                    pel: std::collections::BTreeSet::new(),
                };
                let n = self.count()?;
                for _ in 0..n {
                    let id = self.raw_id()?;
                    let owner = &mut pel
                        .get_mut(&id)
                        .ok_or(LoadError::Corrupt(
                            "stream (consumer entry not in the group's PEL)",
                        ))?
                        .2;
                    if owner.is_some() || !c.pel.insert(id) {
                        return Err(LoadError::Corrupt("stream (duplicated consumer PEL entry)"));
                    }
                    *owner = Some(cname.clone());
                }
                if g.consumers.insert(cname, c).is_some() {
                    return Err(LoadError::Corrupt("stream (duplicate consumer)"));
                }
            }
            for (id, (delivery_time, delivery_count, owner)) in pel {
                let consumer =
                    owner.ok_or(LoadError::Corrupt("stream (PEL entry without consumer)"))?;
                g.pel.insert(
                    id,
                    Nack {
                        consumer,
                        delivery_time,
                        delivery_count,
                    },
                );
            }
            if s.groups.insert(name, g).is_some() {
                return Err(LoadError::Corrupt("stream (duplicated consumer group)"));
            }
        }
        Ok(s)
    }
}

/// A stream ID from its 16 big-endian bytes.
fn id_from_be(b: [u8; 16]) -> StreamId {
    let (ms, seq) = b.split_at(8);
    let word = |h: &[u8]| h.iter().fold(0u64, |n, x| n << 8 | u64::from(*x));
    StreamId::new(word(ms), word(seq))
}

/// A global PEL entry as read: delivery time, count, and the owner the
/// consumers name later.
type LoadedNack = (i64, u64, Option<Box<[u8]>>);

/// One stream node decoded from its listpack.
struct StreamNode {
    /// Live entries, in order.
    entries: Vec<(StreamId, Fields)>,
    /// Entries live and deleted.
    total: usize,
    /// The last ID the node holds, deleted or not.
    last: StreamId,
}

/// Decodes a stream node's listpack (`t_stream.c` layout): the master
/// entry (count, deleted, the master field names, 0), then per entry its
/// flags, ID deltas from `master`, the values alone when its fields are the
/// master's (`SAMEFIELDS`) or a field count and the pairs, and its element
/// count (`lp-count`). Deleted entries are counted and skipped.
fn stream_node(master: StreamId, lp: &[u8]) -> Result<StreamNode> {
    const W: &str = "stream listpack";
    let items = listpack_entries(lp)?;
    let mut it = items.into_iter();
    let mut next = || it.next().ok_or(LoadError::Corrupt(W));
    fn int(e: &[u8]) -> Result<i64> {
        std::str::from_utf8(e)
            .ok()
            .and_then(|s| s.parse::<i64>().ok())
            .ok_or(LoadError::Corrupt(W))
    }
    fn size(v: i64) -> Result<usize> {
        usize::try_from(v).map_err(|_| LoadError::Corrupt(W))
    }
    let count = size(int(&next()?)?)?;
    let deleted = size(int(&next()?)?)?;
    let nmaster = size(int(&next()?)?)?;
    if nmaster > lp.len() {
        return Err(LoadError::Corrupt(W));
    }
    let mut master_fields = Vec::with_capacity(nmaster);
    for _ in 0..nmaster {
        master_fields.push(next()?);
    }
    if int(&next()?)? != 0 {
        return Err(LoadError::Corrupt(W));
    }
    let mut entries = Vec::new();
    let mut total = 0usize;
    let mut last = master;
    let mut rest = it.peekable();
    while rest.peek().is_some() {
        let mut next = || rest.next().ok_or(LoadError::Corrupt(W));
        let flags = int(&next()?)?;
        let ms = master.ms.wrapping_add(int(&next()?)? as u64);
        let seq = master.seq.wrapping_add(int(&next()?)? as u64);
        let id = StreamId::new(ms, seq);
        let (fields, lp_count): (Vec<Box<[u8]>>, usize) = if flags & STREAM_FLAG_SAMEFIELDS != 0 {
            let mut f = Vec::with_capacity(nmaster * 2);
            for name in &master_fields {
                f.push(name.clone().into_boxed_slice());
                f.push(next()?.into_boxed_slice());
            }
            (f, nmaster + 3)
        } else {
            let n = size(int(&next()?)?)?;
            if n > lp.len() {
                return Err(LoadError::Corrupt(W));
            }
            let mut f = Vec::with_capacity(n * 2);
            for _ in 0..n * 2 {
                f.push(next()?.into_boxed_slice());
            }
            (f, 2 * n + 4)
        };
        if size(int(&next()?)?)? != lp_count {
            return Err(LoadError::Corrupt(W));
        }
        if (total > 0 && id <= last) || id < master {
            return Err(LoadError::Corrupt(W));
        }
        total += 1;
        last = id;
        if flags & STREAM_FLAG_DELETED == 0 {
            entries.push((id, fields.into_boxed_slice()));
        }
    }
    if entries.len() != count || total != count + deleted || total == 0 {
        return Err(LoadError::Corrupt(W));
    }
    Ok(StreamNode {
        entries,
        total,
        last,
    })
}

/// Parses a listpack score as Redis writes it (`%.17g`, `inf`, `-inf`).
fn listpack_score(s: &str) -> Option<f64> {
    match s {
        "inf" | "+inf" => Some(f64::INFINITY),
        "-inf" => Some(f64::NEG_INFINITY),
        _ => s.parse::<f64>().ok().filter(|v| !v.is_nan()),
    }
}

fn zset_from(mut items: Vec<(Vec<u8>, f64)>, limits: &EncodingLimits) -> Result<Value> {
    if items.iter().any(|(_, s)| s.is_nan()) {
        return Err(LoadError::Corrupt("zset score (NaN)"));
    }
    for it in &mut items {
        // -0.0 and 0.0 are one score.
        if it.1 == 0.0 {
            it.1 = 0.0;
        }
    }
    let mut seen = std::collections::HashSet::with_capacity(items.len());
    if !items.iter().all(|(m, _)| seen.insert(&m[..])) {
        return Err(LoadError::Corrupt("zset (duplicate member)"));
    }
    items.sort_by(|a, b| a.1.total_cmp(&b.1).then_with(|| a.0.cmp(&b.0)));
    Ok(Value::ZSet(ZSet::from_sorted(
        items.iter().map(|(m, s)| (&m[..], *s)),
        limits,
    )))
}

/// The integers of an intset blob (`encoding:u32 length:u32 values`, LE).
fn intset_entries(b: &[u8]) -> Result<Vec<i64>> {
    let bad = LoadError::Corrupt("intset");
    if b.len() < 8 {
        return Err(bad);
    }
    let width = u32::from_le_bytes([b[0], b[1], b[2], b[3]]) as usize;
    let n = u32::from_le_bytes([b[4], b[5], b[6], b[7]]) as usize;
    if !matches!(width, 2 | 4 | 8) || b.len() != 8 + n * width {
        return Err(bad);
    }
    Ok(b[8..]
        .chunks_exact(width)
        .map(|c| match width {
            2 => i64::from(i16::from_le_bytes([c[0], c[1]])),
            4 => i64::from(i32::from_le_bytes([c[0], c[1], c[2], c[3]])),
            _ => i64::from_le_bytes([c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7]]),
        })
        .collect())
}

fn get<'a>(b: &'a [u8], at: usize, n: usize, what: &'static str) -> Result<&'a [u8]> {
    b.get(at..at.checked_add(n).ok_or(LoadError::Corrupt(what))?)
        .ok_or(LoadError::Corrupt(what))
}

/// The entries of a listpack blob, integers as decimal strings.
fn listpack_entries(b: &[u8]) -> Result<Vec<Vec<u8>>> {
    const W: &str = "listpack";
    let mut out = Vec::new();
    let mut p = 6; // total bytes (u32) + element count (u16)
    if b.len() < 7 {
        return Err(LoadError::Corrupt(W));
    }
    loop {
        let e = *b.get(p).ok_or(LoadError::Corrupt(W))?;
        if e == 0xFF {
            break;
        }
        let (entry, enc_len): (Vec<u8>, usize) = if e & 0x80 == 0 {
            (i64::from(e & 0x7f).to_string().into_bytes(), 1)
        } else if e & 0xC0 == 0x80 {
            let n = usize::from(e & 0x3f);
            (get(b, p + 1, n, W)?.to_vec(), 1 + n)
        } else if e & 0xE0 == 0xC0 {
            let lo = *get(b, p + 1, 1, W)?.first().ok_or(LoadError::Corrupt(W))?;
            let u = (u16::from(e & 0x1f) << 8) | u16::from(lo);
            // 13-bit two's complement.
            let v = if u >= 1 << 12 {
                i64::from(u) - (1 << 13)
            } else {
                i64::from(u)
            };
            (v.to_string().into_bytes(), 2)
        } else if e & 0xF0 == 0xE0 {
            let lo = get(b, p + 1, 1, W)?[0];
            let n = (usize::from(e & 0x0f) << 8) | usize::from(lo);
            (get(b, p + 2, n, W)?.to_vec(), 2 + n)
        } else {
            match e {
                0xF0 => {
                    let l = get(b, p + 1, 4, W)?;
                    let n = u32::from_le_bytes([l[0], l[1], l[2], l[3]]) as usize;
                    (get(b, p + 5, n, W)?.to_vec(), 5 + n)
                }
                0xF1 => {
                    let l = get(b, p + 1, 2, W)?;
                    (i16::from_le_bytes([l[0], l[1]]).to_string().into_bytes(), 3)
                }
                0xF2 => {
                    let l = get(b, p + 1, 3, W)?;
                    let v = (i32::from_le_bytes([0, l[0], l[1], l[2]]) >> 8) as i64;
                    (v.to_string().into_bytes(), 4)
                }
                0xF3 => {
                    let l = get(b, p + 1, 4, W)?;
                    (
                        i32::from_le_bytes([l[0], l[1], l[2], l[3]])
                            .to_string()
                            .into_bytes(),
                        5,
                    )
                }
                0xF4 => {
                    let l = get(b, p + 1, 8, W)?;
                    let mut a = [0u8; 8];
                    a.copy_from_slice(l);
                    (i64::from_le_bytes(a).to_string().into_bytes(), 9)
                }
                _ => return Err(LoadError::Corrupt(W)),
            }
        };
        // `lpEncodeBacklen`'s exact thresholds.
        let backlen = match enc_len {
            0..=127 => 1,
            128..=16382 => 2,
            16383..=2_097_150 => 3,
            2_097_151..=268_435_454 => 4,
            _ => 5,
        };
        p += enc_len + backlen;
        out.push(entry);
    }
    Ok(out)
}

/// The entries of a ziplist blob (Redis before 7.0), integers as decimal
/// strings.
fn ziplist_entries(b: &[u8]) -> Result<Vec<Vec<u8>>> {
    const W: &str = "ziplist";
    let mut out = Vec::new();
    let mut p = 10; // zlbytes, zltail (u32 each), zllen (u16)
    loop {
        let first = *b.get(p).ok_or(LoadError::Corrupt(W))?;
        if first == 0xFF {
            break;
        }
        // prevlen: one byte, or 0xFE and four bytes.
        p += if first == 0xFE { 5 } else { 1 };
        let e = *b.get(p).ok_or(LoadError::Corrupt(W))?;
        let (entry, n): (Vec<u8>, usize) = match e >> 6 {
            0 => {
                let n = usize::from(e & 0x3f);
                (get(b, p + 1, n, W)?.to_vec(), 1 + n)
            }
            1 => {
                let lo = get(b, p + 1, 1, W)?[0];
                let n = (usize::from(e & 0x3f) << 8) | usize::from(lo);
                (get(b, p + 2, n, W)?.to_vec(), 2 + n)
            }
            2 => {
                let l = get(b, p + 1, 4, W)?;
                let n = u32::from_be_bytes([l[0], l[1], l[2], l[3]]) as usize;
                (get(b, p + 5, n, W)?.to_vec(), 5 + n)
            }
            _ => {
                let (v, n): (i64, usize) = match e {
                    0xC0 => {
                        let l = get(b, p + 1, 2, W)?;
                        (i64::from(i16::from_le_bytes([l[0], l[1]])), 3)
                    }
                    0xD0 => {
                        let l = get(b, p + 1, 4, W)?;
                        (i64::from(i32::from_le_bytes([l[0], l[1], l[2], l[3]])), 5)
                    }
                    0xE0 => {
                        let l = get(b, p + 1, 8, W)?;
                        let mut a = [0u8; 8];
                        a.copy_from_slice(l);
                        (i64::from_le_bytes(a), 9)
                    }
                    0xF0 => {
                        let l = get(b, p + 1, 3, W)?;
                        (i64::from(i32::from_le_bytes([0, l[0], l[1], l[2]]) >> 8), 4)
                    }
                    0xFE => (i64::from(get(b, p + 1, 1, W)?[0] as i8), 2),
                    0xF1..=0xFD => (i64::from(e & 0x0f) - 1, 1),
                    _ => return Err(LoadError::Corrupt(W)),
                };
                (v.to_string().into_bytes(), n)
            }
        };
        p += n;
        out.push(entry);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use ferrite_storage::NoObserver;
    use proptest::prelude::*;
    use std::sync::Arc;

    fn limits() -> EncodingLimits {
        EncodingLimits::default()
    }

    /// A canonical, comparable rendering of a value.
    fn render(v: &Value) -> String {
        match v {
            Value::Str { bytes, .. } => format!("s:{bytes:?}"),
            Value::List(l) => format!("l:{:?}", l.iter().collect::<Vec<_>>()),
            Value::Set(s) => {
                let mut m: Vec<Vec<u8>> = s.iter().map(|m| m.to_vec()).collect();
                m.sort();
                format!("S:{m:?}")
            }
            Value::Hash(h) => {
                let mut m: Vec<(Vec<u8>, Vec<u8>)> =
                    h.iter().map(|(f, v)| (f.to_vec(), v.to_vec())).collect();
                m.sort();
                format!("h:{m:?}")
            }
            Value::ZSet(z) => format!(
                "z:{:?}",
                z.iter().map(|(m, s)| (m.to_vec(), s)).collect::<Vec<_>>()
            ),
            Value::Bloom(b) => format!(
                "bf:{}:{:?}:{}:{:?}",
                b.items(),
                b.expansion(),
                b.is_nonscaling(),
                b.filters()
                    .iter()
                    .map(|f| (f.image(), f.bit_bytes()))
                    .collect::<Vec<_>>()
            ),
            Value::Stream(st) => render_stream(st),
        }
    }

    /// Everything a stream shows: entries, node layout, counters, groups
    /// with their PEL and consumers.
    fn render_stream(st: &Stream) -> String {
        let entries: Vec<_> = st
            .range(StreamId::MIN, StreamId::MAX)
            .map(|(id, f)| (id, f.to_vec()))
            .collect();
        // The writer keys a node by its first live entry: compare the live
        // entries each node holds.
        let nodes: Vec<Vec<StreamId>> = st
            .node_ranges()
            .into_iter()
            .map(|(a, b)| st.range(a, b).map(|e| e.0).collect())
            .collect();
        format!(
            "x:{entries:?} nodes={nodes:?} mem={} last={} first={} maxdel={} added={} groups={:?}",
            st.mem_usage(),
            st.last_id,
            st.first_id,
            st.max_deleted_entry_id,
            st.entries_added,
            st.groups
        )
    }

    #[derive(Debug, Clone)]
    enum Gen {
        Str(Vec<u8>),
        List(Vec<Vec<u8>>),
        Set(Vec<Vec<u8>>),
        Hash(Vec<(Vec<u8>, Vec<u8>)>),
        ZSet(Vec<(Vec<u8>, i32)>),
        /// Entries (ms step, pairs), IDs to delete, node size, and groups
        /// (last delivered index, deliveries as (entry index, consumer)).
        Stream(StreamGen),
        /// Capacity, expansion (0: non-scaling) and the items added.
        Bloom(u64, u64, Vec<Vec<u8>>),
    }

    type Pair = (Vec<u8>, Vec<u8>);

    #[derive(Debug, Clone)]
    struct StreamGen {
        entries: Vec<(u8, Vec<Pair>)>,
        deletes: Vec<usize>,
        per_node: usize,
        groups: Vec<(usize, Vec<(usize, u8)>)>,
    }

    fn stream_gen() -> impl Strategy<Value = StreamGen> {
        let pairs = proptest::collection::vec((bytes(), bytes()), 1..4);
        (
            proptest::collection::vec((0u8..3, pairs), 0..40),
            proptest::collection::vec(0usize..40, 0..10),
            1usize..6,
            proptest::collection::vec(
                (
                    0usize..40,
                    proptest::collection::vec((0usize..40, 0u8..3), 0..8),
                ),
                0..3,
            ),
        )
            .prop_map(|(entries, deletes, per_node, groups)| StreamGen {
                entries,
                deletes,
                per_node,
                groups,
            })
    }

    fn build_stream(g: &StreamGen) -> Stream {
        let lim = EncodingLimits {
            stream_node_max_entries: g.per_node,
            ..limits()
        };
        let mut s = Stream::new();
        let mut ids = Vec::new();
        let mut ms = 1;
        for (step, pairs) in &g.entries {
            ms += u64::from(*step);
            let id = s.next_auto_id(ms).unwrap();
            let f: Vec<Box<[u8]>> = pairs
                .iter()
                .flat_map(|(a, b)| [a.clone().into_boxed_slice(), b.clone().into_boxed_slice()])
                .collect();
            s.append(id, f.into_boxed_slice(), &lim).unwrap();
            ids.push(id);
        }
        for (i, (last, deliveries)) in g.groups.iter().enumerate() {
            let last_id = ids.get(*last).copied().unwrap_or_default();
            let read = s.estimate_distance(last_id);
            let mut cg = ConsumerGroup::new(last_id, read);
            for (e, c) in deliveries {
                if let Some(id) = ids.get(*e) {
                    let name = [b'c', b'0' + c];
                    cg.consumer_or_create(&name, 7);
                    cg.assign(*id, &name, 1000 + *e as i64, 1 + u64::from(*c));
                }
            }
            cg.consumer_or_create(b"idle", 3);
            s.groups
                .insert(format!("g{i}").into_bytes().into_boxed_slice(), cg);
        }
        let del: Vec<StreamId> = g
            .deletes
            .iter()
            .filter_map(|i| ids.get(*i).copied())
            .collect();
        s.delete(&del);
        s
    }

    fn bytes() -> impl Strategy<Value = Vec<u8>> {
        prop_oneof![
            proptest::collection::vec(any::<u8>(), 0..80),
            (-100000i64..100000).prop_map(|n| n.to_string().into_bytes()),
            // Compressible under `rdbcompression`.
            (any::<u8>(), 0usize..300).prop_map(|(b, n)| vec![b; n]),
            (0u32..1000, 1usize..20)
                .prop_map(|(v, n)| format!("value:{v} ").repeat(n).into_bytes()),
        ]
    }

    fn gen() -> impl Strategy<Value = Gen> {
        prop_oneof![
            bytes().prop_map(Gen::Str),
            proptest::collection::vec(bytes(), 1..200).prop_map(Gen::List),
            proptest::collection::vec(bytes(), 1..200).prop_map(Gen::Set),
            proptest::collection::vec((bytes(), bytes()), 1..200).prop_map(Gen::Hash),
            proptest::collection::vec((bytes(), any::<i32>()), 1..200).prop_map(Gen::ZSet),
            stream_gen().prop_map(Gen::Stream),
            (
                1..40u64,
                0..4u64,
                proptest::collection::vec(bytes(), 0..200)
            )
                .prop_map(|(c, e, v)| Gen::Bloom(c, e, v)),
        ]
    }

    fn build(g: &Gen) -> Value {
        let lim = limits();
        match g {
            Gen::Str(b) => Value::string(b.clone()),
            Gen::List(v) => {
                let mut l = List::new();
                for e in v {
                    l.push_back(e);
                }
                Value::List(l)
            }
            Gen::Set(v) => {
                let mut s = Set::new();
                for e in v {
                    s.add(e, lim.set_max_intset_entries);
                }
                Value::Set(s)
            }
            Gen::Hash(v) => {
                let mut h = Hash::new();
                for (f, x) in v {
                    h.set(f, x, &lim);
                }
                Value::Hash(h)
            }
            Gen::ZSet(v) => {
                let uniq: std::collections::BTreeMap<_, _> = v.iter().cloned().collect();
                let items = uniq
                    .into_iter()
                    .map(|(m, s)| (m, f64::from(s) / 7.0))
                    .collect();
                zset_from(items, &lim).unwrap()
            }
            Gen::Stream(g) => Value::Stream(Box::new(build_stream(g))),
            Gen::Bloom(cap, exp, items) => {
                let mut b =
                    ferrite_storage::Bloom::new(0.01, *cap, (*exp).max(1), *exp == 0).unwrap();
                for it in items {
                    let _ = b.add(it);
                }
                Value::Bloom(Box::new(b))
            }
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]
        #[test]
        fn dump_then_load_gives_the_same_dataset(
            keys in proptest::collection::vec((0usize..4, bytes(), gen(), any::<bool>()), 0..20),
            compress in any::<bool>(),
        ) {
            let now = 1_700_000_000_000;
            let store = ferrite_storage::Store::new(4, 4, Arc::new(NoObserver));
            let mut want = std::collections::BTreeMap::new();
            for (db, key, g, ttl) in &keys {
                let v = build(g);
                let exp = if *ttl { now + 100_000 } else { NO_EXPIRE };
                want.insert((*db, key.clone()), (render(&v), exp));
                store.db(*db).with_shard(key, |s| s.set(key, v, exp, now));
            }
            let rdb = crate::rdb::dump(&store, compress, now, 0, &[], None);
            let mut got = std::collections::BTreeMap::new();
            load(&rdb, 4, &limits(), |k| {
                got.insert((k.db, k.key), (render(&k.value), k.expire_at));
            }).unwrap();
            prop_assert_eq!(got, want);
        }

        #[test]
        fn garbage_never_panics(data in proptest::collection::vec(any::<u8>(), 0..300)) {
            let mut file = b"REDIS0010".to_vec();
            file.extend_from_slice(&data);
            let _ = load(&file, 16, &limits(), |_| {});
        }

        #[test]
        fn garbage_streams_never_panic(
            t in prop_oneof![Just(TYPE_STREAM_LISTPACKS), Just(TYPE_STREAM_LISTPACKS_2), Just(TYPE_STREAM_LISTPACKS_3)],
            data in proptest::collection::vec(any::<u8>(), 0..300),
        ) {
            let mut file = b"REDIS0010".to_vec();
            file.extend_from_slice(&[t, 1, b's']);
            file.extend_from_slice(&data);
            let _ = load(&file, 16, &limits(), |_| {});
        }

        #[test]
        fn mutated_streams_never_panic(
            t in prop_oneof![Just(TYPE_STREAM_LISTPACKS), Just(TYPE_STREAM_LISTPACKS_2), Just(TYPE_STREAM_LISTPACKS_3)],
            edits in proptest::collection::vec((any::<usize>(), any::<u8>()), 1..6),
        ) {
            let mut file = stream_file(t);
            let n = file.len() - 9;
            for (i, b) in edits {
                file[12 + i % (n - 12)] = b;
            }
            let _ = load(&file, 16, &limits(), |_| {});
        }
    }

    #[test]
    fn the_replication_history_round_trips_through_aux_fields() {
        let store = ferrite_storage::Store::new(1, 1, Arc::new(NoObserver));
        let repl = crate::rdb::ReplInfo {
            stream_db: 3,
            replid: "ab".repeat(20),
            offset: 12345,
        };
        let rdb = crate::rdb::dump(&store, false, 0, 0, &[], Some(&repl));
        let info = load(&rdb, 1, &limits(), |_| {}).unwrap();
        assert_eq!(info.repl(), Some(repl));
        let keys: Vec<&[u8]> = info.aux.iter().map(|(k, _)| k.as_slice()).collect();
        assert_eq!(
            keys,
            [
                &b"redis-ver"[..],
                b"redis-bits",
                b"ctime",
                b"used-mem",
                b"repl-stream-db",
                b"repl-id",
                b"repl-offset",
                b"aof-base"
            ]
        );
        // Without them, or with Redis's invalid -1 database, no history.
        let rdb = crate::rdb::dump(&store, true, 0, 0, &[], None);
        assert_eq!(load(&rdb, 1, &limits(), |_| {}).unwrap().repl(), None);
        let mut info = LoadInfo::default();
        for (k, v) in [
            ("repl-stream-db", "-1"),
            ("repl-id", &"ab".repeat(20)),
            ("repl-offset", "7"),
        ] {
            info.aux
                .push((k.as_bytes().to_vec(), v.as_bytes().to_vec()));
        }
        assert_eq!(info.repl(), None);
    }

    #[test]
    fn truncated_and_corrupt_files_are_errors() {
        let store = ferrite_storage::Store::new(1, 1, Arc::new(NoObserver));
        store
            .db(0)
            .with_shard(b"k", |s| s.set(b"k", Value::string("v"), NO_EXPIRE, 0));
        let rdb = crate::rdb::dump(&store, true, 0, 0, &[], None);
        for cut in 0..rdb.len() {
            assert!(
                load(&rdb[..cut], 1, &limits(), |_| {}).is_err(),
                "cut {cut}"
            );
        }
        let mut bad = rdb.clone();
        let n = bad.len();
        bad[n - 12] ^= 1;
        assert!(load(&bad, 1, &limits(), |_| {}).is_err());
        assert_eq!(
            load(b"RUBBISH00", 1, &limits(), |_| {}).err(),
            Some(LoadError::BadSignature)
        );
        assert_eq!(
            load(b"REDIS0011", 1, &limits(), |_| {}).err(),
            Some(LoadError::BadVersion(11))
        );
    }

    #[test]
    fn unknown_types_are_a_clean_error() {
        // A type number no Redis writes.
        let mut f = b"REDIS0010".to_vec();
        f.extend_from_slice(&[8, 1, b's', 0]);
        let e = load(&f, 16, &limits(), |_| {}).err();
        assert_eq!(e, Some(LoadError::UnsupportedType(8, "s".into())));
        // A module value (RDB_TYPE_MODULE_2) of a module we lack, named.
        let mut f = b"REDIS0010".to_vec();
        f.extend_from_slice(&[7, 1, b's']);
        crate::rdb::put_len(&mut f, crate::rdb::module_type_id(b"MBbloom--", 4));
        let e = load(&f, 16, &limits(), |_| {}).err();
        assert_eq!(e, Some(LoadError::UnknownModule("MBbloom--".into())));
        assert_eq!(
            e.map(|e| e.to_string()).unwrap_or_default(),
            "The RDB file contains module data I can't load: no matching module type 'MBbloom--'"
        );
        let mut f = b"REDIS0010".to_vec();
        f.push(OPCODE_MODULE_AUX);
        assert_eq!(
            load(&f, 16, &limits(), |_| {}).err(),
            Some(LoadError::ModuleAux)
        );
    }

    /// A file holding one stream `s` of type `t` (15, 19 or 21), written
    /// by hand: a node of three entries (a deleted one with the master's
    /// fields, one with other fields, one with the master's), a node of
    /// one, and a group whose PEL two consumers share.
    fn stream_file(t: u8) -> Vec<u8> {
        use crate::rdb::{put_len, put_string, Listpack};
        let mut f = b"REDIS0010".to_vec();
        f.push(t);
        put_string(&mut f, b"s");
        put_len(&mut f, 2);
        put_string(&mut f, &StreamId::new(10, 0).to_be_bytes());
        let mut lp = Listpack::default();
        for x in [2, 1, 2] {
            lp.int(x);
        }
        lp.string(b"a");
        lp.string(b"b");
        lp.int(0);
        // 10-0 deleted, same fields.
        for x in [STREAM_FLAG_DELETED | STREAM_FLAG_SAMEFIELDS, 0, 0] {
            lp.int(x);
        }
        lp.string(b"1");
        lp.int(-20000);
        lp.int(5);
        // 10-1: c=3.
        for x in [0, 0, 1, 1] {
            lp.int(x);
        }
        lp.string(b"c");
        lp.int(3);
        lp.int(6);
        // 11-0 same fields.
        for x in [STREAM_FLAG_SAMEFIELDS, 1, 0] {
            lp.int(x);
        }
        lp.string(&[b'x'; 5000]);
        lp.string(b"5");
        lp.int(5);
        put_string(&mut f, &lp.finish());
        put_string(&mut f, &StreamId::new(20, 0).to_be_bytes());
        let mut lp = Listpack::default();
        for x in [1, 0, 1] {
            lp.int(x);
        }
        lp.string(b"z");
        lp.int(0);
        for x in [STREAM_FLAG_SAMEFIELDS, 0, 0] {
            lp.int(x);
        }
        lp.string(b"zz");
        lp.int(4);
        put_string(&mut f, &lp.finish());
        put_len(&mut f, 3);
        put_len(&mut f, 25);
        put_len(&mut f, 0);
        if t != TYPE_STREAM_LISTPACKS {
            for x in [10, 1, 10, 0, 5] {
                put_len(&mut f, x);
            }
        }
        put_len(&mut f, 1);
        put_string(&mut f, b"g");
        put_len(&mut f, 20);
        put_len(&mut f, 0);
        if t != TYPE_STREAM_LISTPACKS {
            put_len(&mut f, 4);
        }
        put_len(&mut f, 2);
        for (id, time, count) in [
            (StreamId::new(10, 1), 100i64, 2),
            (StreamId::new(20, 0), 200, 1),
        ] {
            f.extend_from_slice(&id.to_be_bytes());
            f.extend_from_slice(&time.to_le_bytes());
            put_len(&mut f, count);
        }
        put_len(&mut f, 2);
        for (name, seen, id) in [
            (b"c1", 50i64, StreamId::new(10, 1)),
            (b"c2", 70, StreamId::new(20, 0)),
        ] {
            put_string(&mut f, name);
            f.extend_from_slice(&seen.to_le_bytes());
            if t == TYPE_STREAM_LISTPACKS_3 {
                f.extend_from_slice(&(seen + 1).to_le_bytes());
            }
            put_len(&mut f, 1);
            f.extend_from_slice(&id.to_be_bytes());
        }
        f.push(OPCODE_EOF);
        f.extend_from_slice(&[0; 8]);
        f
    }

    fn load_stream(f: &[u8]) -> Result<Stream> {
        let mut got = None;
        load(f, 16, &limits(), |k| got = Some(k.value))?;
        match got {
            Some(Value::Stream(s)) => Ok(*s),
            _ => Err(LoadError::Corrupt("no stream")),
        }
    }

    #[test]
    fn streams_of_every_rdb_type_load_with_their_groups() {
        for t in [
            TYPE_STREAM_LISTPACKS,
            TYPE_STREAM_LISTPACKS_2,
            TYPE_STREAM_LISTPACKS_3,
        ] {
            let mut s = load_stream(&stream_file(t)).unwrap();
            let ids: Vec<StreamId> = s.range(StreamId::MIN, StreamId::MAX).map(|e| e.0).collect();
            assert_eq!(
                ids,
                [
                    StreamId::new(10, 1),
                    StreamId::new(11, 0),
                    StreamId::new(20, 0)
                ]
            );
            let f =
                |id| -> Vec<Vec<u8>> { s.get(id).unwrap().iter().map(|x| x.to_vec()).collect() };
            assert_eq!(f(StreamId::new(10, 1)), [b"c".to_vec(), b"3".to_vec()]);
            assert_eq!(
                f(StreamId::new(11, 0)),
                [
                    b"a".to_vec(),
                    vec![b'x'; 5000],
                    b"b".to_vec(),
                    b"5".to_vec()
                ]
            );
            assert_eq!(f(StreamId::new(20, 0)), [b"z".to_vec(), b"zz".to_vec()]);
            assert_eq!(
                s.node_ranges(),
                [
                    (StreamId::new(10, 0), StreamId::new(11, 0)),
                    (StreamId::new(20, 0), StreamId::new(20, 0))
                ]
            );
            assert_eq!(s.last_id, StreamId::new(25, 0));
            assert_eq!(s.first_id, StreamId::new(10, 1));
            let g = &s.groups[&b"g"[..]];
            assert_eq!(g.last_id, StreamId::new(20, 0));
            if t == TYPE_STREAM_LISTPACKS {
                assert_eq!(s.max_deleted_entry_id, StreamId::MIN);
                assert_eq!(s.entries_added, 3);
                assert_eq!(g.entries_read, s.estimate_distance(g.last_id));
            } else {
                assert_eq!(s.max_deleted_entry_id, StreamId::new(10, 0));
                assert_eq!(s.entries_added, 5);
                assert_eq!(g.entries_read, 4);
            }
            assert_eq!(g.pel.len(), 2);
            let n = &g.pel[&StreamId::new(10, 1)];
            assert_eq!(
                (&n.consumer[..], n.delivery_time, n.delivery_count),
                (&b"c1"[..], 100, 2)
            );
            let n = &g.pel[&StreamId::new(20, 0)];
            assert_eq!(
                (&n.consumer[..], n.delivery_time, n.delivery_count),
                (&b"c2"[..], 200, 1)
            );
            let c = &g.consumers[&b"c2"[..]];
            assert_eq!(c.seen_time, 70);
            assert_eq!(
                c.pel.iter().copied().collect::<Vec<_>>(),
                [StreamId::new(20, 0)]
            );
            assert!(s.mem_usage() > 5000);
            // Later appends continue the file's last node as Redis would.
            let lim = EncodingLimits {
                stream_node_max_entries: 2,
                ..limits()
            };
            let one = || vec![Box::from(&b"f"[..]), Box::from(&b"v"[..])].into_boxed_slice();
            s.append(StreamId::new(26, 0), one(), &lim).unwrap();
            assert_eq!(s.node_count(), 2);
            s.append(StreamId::new(27, 0), one(), &lim).unwrap();
            assert_eq!(s.node_count(), 3);
        }
    }

    #[test]
    fn corrupt_streams_are_errors() {
        let good = stream_file(TYPE_STREAM_LISTPACKS_2);
        for cut in 0..good.len() - 9 {
            assert!(load_stream(&good[..cut]).is_err(), "cut {cut}");
        }
        // Every single-byte change loads or fails, never panics.
        for i in 10..good.len() - 9 {
            for x in [0u8, 1, 0x7f, 0x80, 0xff] {
                let mut bad = good.clone();
                bad[i] ^= x;
                let _ = load_stream(&bad);
            }
        }
        // A global PEL entry no consumer owns.
        let mut f = b"REDIS0010".to_vec();
        let mut body = vec![
            TYPE_STREAM_LISTPACKS_2,
            1,
            b's',
            0,
            0,
            0,
            0,
            0,
            0,
            0,
            0,
            0,
            1,
            1,
            b'g',
            0,
            0,
            0,
            1,
        ];
        body.extend_from_slice(&StreamId::new(1, 0).to_be_bytes());
        body.extend_from_slice(&[0; 8]);
        body.extend_from_slice(&[1, 0]);
        f.extend_from_slice(&body);
        f.push(OPCODE_EOF);
        f.extend_from_slice(&[0; 8]);
        assert_eq!(
            load_stream(&f).err(),
            Some(LoadError::Corrupt("stream (PEL entry without consumer)"))
        );
    }

    #[test]
    fn listpack_integer_forms() {
        // 7-bit 5, 13-bit -1, 16-bit 1000, string "ab".
        let mut lp = vec![0, 0, 0, 0, 4, 0];
        lp.extend_from_slice(&[0x05, 1]);
        lp.extend_from_slice(&[0xDF, 0xFF, 2]);
        lp.extend_from_slice(&[0xF1, 0xE8, 0x03, 3]);
        lp.extend_from_slice(&[0x82, b'a', b'b', 3]);
        lp.push(0xFF);
        let e = listpack_entries(&lp).unwrap();
        assert_eq!(
            e,
            vec![
                b"5".to_vec(),
                b"-1".to_vec(),
                b"1000".to_vec(),
                b"ab".to_vec()
            ]
        );
    }
}
