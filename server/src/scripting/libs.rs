//! The extra libraries Redis links into its Lua: `bit` (LuaBitOp),
//! `cjson` (lua-cjson) and `cmsgpack` (lua-cmsgpack), written here in Rust
//! over mlua since mlua ships none of them. `struct` is not provided.

use mlua::{Lua, MultiValue, Table, Value};

fn rt(msg: impl Into<String>) -> mlua::Error {
    mlua::Error::RuntimeError(msg.into())
}

/// LuaBitOp's `tobit`: the number taken modulo 2^32 as a signed 32-bit integer.
fn tobit(v: &Value, n: usize, name: &str) -> mlua::Result<i32> {
    let x = match v {
        Value::Integer(i) => *i as f64,
        Value::Number(f) => *f,
        Value::String(s) => std::str::from_utf8(&s.as_bytes())
            .ok()
            .and_then(|s| s.trim().parse::<f64>().ok())
            .ok_or_else(|| {
                rt(format!(
                    "bad argument #{n} to '{name}' (number expected, got string)"
                ))
            })?,
        other => {
            return Err(rt(format!(
                "bad argument #{n} to '{name}' (number expected, got {})",
                other.type_name()
            )))
        }
    };
    // LuaBitOp adds 2^52+2^51 and takes the low word; for finite values
    // this is rounding to an integer then wrapping.
    let r = x.round_ties_even();
    Ok((r.rem_euclid(4294967296.0) as u64) as u32 as i32)
}

fn install_bit(lua: &Lua, g: &Table) -> mlua::Result<()> {
    let bit = lua.create_table()?;
    macro_rules! fold {
        ($name:literal, $op:expr) => {
            bit.raw_set(
                $name,
                lua.create_function(|_, args: MultiValue| {
                    let mut it = args.iter().enumerate();
                    let Some((_, first)) = it.next() else {
                        return Err(rt(concat!(
                            "bad argument #1 to '",
                            $name,
                            "' (number expected, got no value)"
                        )));
                    };
                    let mut acc = tobit(first, 1, $name)?;
                    for (i, v) in it {
                        acc = $op(acc, tobit(v, i + 1, $name)?);
                    }
                    Ok(f64::from(acc))
                })?,
            )?;
        };
    }
    fold!("band", |a: i32, b: i32| a & b);
    fold!("bor", |a: i32, b: i32| a | b);
    fold!("bxor", |a: i32, b: i32| a ^ b);
    bit.raw_set(
        "tobit",
        lua.create_function(|_, v: Value| Ok(f64::from(tobit(&v, 1, "tobit")?)))?,
    )?;
    bit.raw_set(
        "bnot",
        lua.create_function(|_, v: Value| Ok(f64::from(!tobit(&v, 1, "bnot")?)))?,
    )?;
    bit.raw_set(
        "bswap",
        lua.create_function(|_, v: Value| Ok(f64::from(tobit(&v, 1, "bswap")?.swap_bytes())))?,
    )?;
    macro_rules! shift {
        ($name:literal, $op:expr) => {
            bit.raw_set(
                $name,
                lua.create_function(|_, (a, n): (Value, Value)| {
                    let a = tobit(&a, 1, $name)?;
                    let n = (tobit(&n, 2, $name)? & 31) as u32;
                    Ok(f64::from($op(a, n)))
                })?,
            )?;
        };
    }
    shift!("lshift", |a: i32, n: u32| ((a as u32) << n) as i32);
    shift!("rshift", |a: i32, n: u32| ((a as u32) >> n) as i32);
    shift!("arshift", |a: i32, n: u32| a >> n);
    shift!("rol", |a: i32, n: u32| (a as u32).rotate_left(n) as i32);
    shift!("ror", |a: i32, n: u32| (a as u32).rotate_right(n) as i32);
    bit.raw_set(
        "tohex",
        lua.create_function(|_, (a, n): (Value, Option<Value>)| {
            let a = tobit(&a, 1, "tohex")? as u32;
            let mut n = match n {
                Some(v) => tobit(&v, 2, "tohex")?,
                None => 8,
            };
            let upper = n < 0;
            if upper {
                n = -n;
            }
            let n = n.clamp(1, 8) as usize;
            let s = if upper {
                format!("{a:08X}")
            } else {
                format!("{a:08x}")
            };
            Ok(s[8 - n..].to_string())
        })?,
    )?;
    g.raw_set("bit", bit)
}

thread_local! {
    /// `cjson.encode_invalid_numbers(true)`: NaN and Inf are written.
    static INVALID_NUMBERS: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// lua-cjson's number formatting (`%.14g`).
fn json_number(n: f64, out: &mut Vec<u8>) -> mlua::Result<()> {
    if !n.is_finite() && INVALID_NUMBERS.with(|c| c.get()) {
        put(
            out,
            if n.is_nan() {
                "nan"
            } else if n > 0.0 {
                "inf"
            } else {
                "-inf"
            },
        );
        return Ok(());
    }
    if !n.is_finite() {
        return Err(rt("Cannot serialise number: must not be NaN or Inf"));
    }
    put(out, &super::engine::lua_number_string(n));
    Ok(())
}

fn put(out: &mut Vec<u8>, s: &str) {
    out.extend_from_slice(s.as_bytes());
}

fn json_string(s: &[u8], out: &mut Vec<u8>) {
    out.push(b'"');
    for &b in s {
        match b {
            b'"' => put(out, "\\\""),
            b'\\' => put(out, "\\\\"),
            b'/' => put(out, "\\/"),
            b'\n' => put(out, "\\n"),
            b'\r' => put(out, "\\r"),
            b'\t' => put(out, "\\t"),
            8 => put(out, "\\b"),
            12 => put(out, "\\f"),
            c if c < 0x20 || c == 0x7f => put(out, &format!("\\u{c:04x}")),
            c => {
                // Bytes pass through unchanged (cjson does not validate UTF-8).
                out.push(c);
            }
        }
    }
    out.push(b'"');
}

fn encode(v: &Value, out: &mut Vec<u8>, depth: usize, max_depth: usize) -> mlua::Result<()> {
    match v {
        Value::Nil => put(out, "null"),
        Value::LightUserData(p) if p.0.is_null() => put(out, "null"),
        Value::Boolean(b) => put(out, if *b { "true" } else { "false" }),
        Value::Integer(i) => put(out, &i.to_string()),
        Value::Number(n) => json_number(*n, out)?,
        Value::String(s) => json_string(&s.as_bytes(), out),
        Value::Table(_) if depth > max_depth => {
            return Err(rt(format!("Cannot serialise, excessive nesting ({depth})")));
        }
        Value::Table(t) => {
            // An array when every key is a positive integer.
            let mut max = 0i64;
            let mut count = 0i64;
            let mut array = true;
            for pair in t.pairs::<Value, Value>() {
                let (k, _) = pair?;
                count += 1;
                match k {
                    Value::Integer(i) if i >= 1 => max = max.max(i),
                    Value::Number(n) if n >= 1.0 && n == n.trunc() => max = max.max(n as i64),
                    _ => array = false,
                }
            }
            if array && count > 0 {
                if max > count * 2 && max > 10 {
                    return Err(rt("Cannot serialise table: excessively sparse array"));
                }
                out.push(b'[');
                for i in 1..=max {
                    if i > 1 {
                        out.push(b',');
                    }
                    encode(&t.raw_get::<Value>(i)?, out, depth + 1, max_depth)?;
                }
                out.push(b']');
            } else {
                out.push(b'{');
                let mut first = true;
                for pair in t.pairs::<Value, Value>() {
                    let (k, v) = pair?;
                    if !first {
                        out.push(b',');
                    }
                    first = false;
                    match &k {
                        Value::String(s) => json_string(&s.as_bytes(), out),
                        Value::Integer(i) => json_string(i.to_string().as_bytes(), out),
                        Value::Number(n) => {
                            let mut s = Vec::new();
                            json_number(*n, &mut s)?;
                            json_string(&s, out);
                        }
                        _ => {
                            return Err(rt(
                                "Cannot serialise table: table key must be a number or string",
                            ))
                        }
                    }
                    out.push(b':');
                    encode(&v, out, depth + 1, max_depth)?;
                }
                out.push(b'}');
            }
        }
        other => {
            return Err(rt(format!(
                "Cannot serialise {}: type not supported",
                other.type_name()
            )))
        }
    }
    Ok(())
}

struct Parser<'a> {
    b: &'a [u8],
    i: usize,
    depth: usize,
    max: usize,
}

impl Parser<'_> {
    fn ws(&mut self) {
        while self.i < self.b.len() && matches!(self.b[self.i], b' ' | b'\t' | b'\n' | b'\r') {
            self.i += 1;
        }
    }

    fn fail<T>(&self, what: &str) -> mlua::Result<T> {
        Err(rt(format!(
            "Expected {what} but found invalid token at character {}",
            self.i + 1
        )))
    }

    fn value(&mut self, lua: &Lua) -> mlua::Result<Value> {
        self.ws();
        let Some(&c) = self.b.get(self.i) else {
            return self.fail("value");
        };
        match c {
            b'{' => {
                self.depth += 1;
                if self.depth > self.max {
                    return Err(rt(format!(
                        "Found too many nested data structures ({}) at character {}",
                        self.depth,
                        self.i + 1
                    )));
                }
                self.i += 1;
                let t = lua.create_table()?;
                self.ws();
                if self.b.get(self.i) == Some(&b'}') {
                    self.i += 1;
                    self.depth -= 1;
                    return Ok(Value::Table(t));
                }
                loop {
                    self.ws();
                    if self.b.get(self.i) != Some(&b'"') {
                        return self.fail("object key string");
                    }
                    let k = self.string(lua)?;
                    self.ws();
                    if self.b.get(self.i) != Some(&b':') {
                        return self.fail("colon");
                    }
                    self.i += 1;
                    let v = self.value(lua)?;
                    t.raw_set(k, v)?;
                    self.ws();
                    match self.b.get(self.i) {
                        Some(b',') => self.i += 1,
                        Some(b'}') => {
                            self.i += 1;
                            break;
                        }
                        _ => return self.fail("comma or object end"),
                    }
                }
                self.depth -= 1;
                Ok(Value::Table(t))
            }
            b'[' => {
                self.depth += 1;
                if self.depth > self.max {
                    return Err(rt(format!(
                        "Found too many nested data structures ({}) at character {}",
                        self.depth,
                        self.i + 1
                    )));
                }
                self.i += 1;
                let t = lua.create_table()?;
                self.ws();
                if self.b.get(self.i) == Some(&b']') {
                    self.i += 1;
                    self.depth -= 1;
                    return Ok(Value::Table(t));
                }
                let mut n = 1;
                loop {
                    let v = self.value(lua)?;
                    t.raw_set(n, v)?;
                    n += 1;
                    self.ws();
                    match self.b.get(self.i) {
                        Some(b',') => self.i += 1,
                        Some(b']') => {
                            self.i += 1;
                            break;
                        }
                        _ => return self.fail("comma or array end"),
                    }
                }
                self.depth -= 1;
                Ok(Value::Table(t))
            }
            b'"' => Ok(Value::String(self.string(lua)?)),
            b't' if self.b[self.i..].starts_with(b"true") => {
                self.i += 4;
                Ok(Value::Boolean(true))
            }
            b'f' if self.b[self.i..].starts_with(b"false") => {
                self.i += 5;
                Ok(Value::Boolean(false))
            }
            b'n' if self.b[self.i..].starts_with(b"null") => {
                self.i += 4;
                Ok(Value::LightUserData(mlua::LightUserData(
                    std::ptr::null_mut(),
                )))
            }
            b'-' | b'0'..=b'9' => {
                let start = self.i;
                while self.i < self.b.len()
                    && matches!(
                        self.b[self.i],
                        b'-' | b'+' | b'.' | b'e' | b'E' | b'0'..=b'9'
                    )
                {
                    self.i += 1;
                }
                let s = std::str::from_utf8(&self.b[start..self.i]).unwrap_or("");
                match s.parse::<f64>() {
                    Ok(n) => Ok(Value::Number(n)),
                    Err(_) => {
                        self.i = start;
                        self.fail("value")
                    }
                }
            }
            _ => self.fail("value"),
        }
    }

    fn string(&mut self, lua: &Lua) -> mlua::Result<mlua::LuaString> {
        self.i += 1;
        let mut v = Vec::new();
        loop {
            let Some(&c) = self.b.get(self.i) else {
                return self.fail("string end");
            };
            self.i += 1;
            match c {
                b'"' => break,
                b'\\' => {
                    let Some(&e) = self.b.get(self.i) else {
                        return self.fail("escape");
                    };
                    self.i += 1;
                    match e {
                        b'"' | b'\\' | b'/' => v.push(e),
                        b'b' => v.push(8),
                        b'f' => v.push(12),
                        b'n' => v.push(b'\n'),
                        b'r' => v.push(b'\r'),
                        b't' => v.push(b'\t'),
                        b'u' => {
                            let hex = |p: &Self, at: usize| {
                                p.b.get(at..at + 4)
                                    .and_then(|h| std::str::from_utf8(h).ok())
                                    .and_then(|h| u32::from_str_radix(h, 16).ok())
                            };
                            let Some(mut cp) = hex(self, self.i) else {
                                return self.fail("unicode escape");
                            };
                            self.i += 4;
                            if (0xD800..0xDC00).contains(&cp)
                                && self.b.get(self.i..self.i + 2) == Some(b"\\u")
                            {
                                if let Some(lo) = hex(self, self.i + 2) {
                                    if (0xDC00..0xE000).contains(&lo) {
                                        cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
                                        self.i += 6;
                                    }
                                }
                            }
                            let ch = char::from_u32(cp).unwrap_or('\u{FFFD}');
                            let mut buf = [0u8; 4];
                            v.extend_from_slice(ch.encode_utf8(&mut buf).as_bytes());
                        }
                        _ => return self.fail("escape"),
                    }
                }
                c => v.push(c),
            }
        }
        lua.create_string(&v)
    }
}

fn install_cjson(lua: &Lua, g: &Table) -> mlua::Result<()> {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;
    let cjson = lua.create_table()?;
    let enc_max = Arc::new(AtomicUsize::new(1000));
    let dec_max = Arc::new(AtomicUsize::new(1000));
    for (name, cell) in [
        ("encode_max_depth", enc_max.clone()),
        ("decode_max_depth", dec_max.clone()),
    ] {
        cjson.raw_set(
            name,
            lua.create_function(move |_, v: Option<i64>| {
                if let Some(n) = v {
                    if !(1..=i64::from(i32::MAX)).contains(&n) {
                        return Err(rt(format!("bad argument #1 to '{name}' (expected integer between 1 and 2147483647)")));
                    }
                    cell.store(n as usize, Ordering::Relaxed);
                }
                Ok(cell.load(Ordering::Relaxed) as i64)
            })?,
        )?;
    }
    cjson.raw_set(
        "encode",
        lua.create_function(move |lua, args: MultiValue| {
            if args.len() != 1 {
                return Err(rt("bad argument #1 to 'encode' (expected 1 argument)"));
            }
            let mut s = Vec::new();
            encode(&args[0], &mut s, 1, enc_max.load(Ordering::Relaxed))?;
            lua.create_string(&s)
        })?,
    )?;
    cjson.raw_set(
        "decode",
        lua.create_function(move |lua, s: mlua::LuaString| {
            let b = s.as_bytes();
            let mut p = Parser {
                b: &b,
                i: 0,
                depth: 0,
                max: dec_max.load(Ordering::Relaxed),
            };
            let v = p.value(lua)?;
            p.ws();
            if p.i != b.len() {
                return p.fail("the end");
            }
            Ok(v)
        })?,
    )?;
    let encode: mlua::Function = cjson.raw_get("encode")?;
    cjson.raw_set("encode_keep_buffer", encode)?;
    // lua-cjson's configuration calls, accepted and ignored.
    for name in [
        "encode_number_precision",
        "encode_sparse_array",
        "decode_invalid_numbers",
    ] {
        cjson.raw_set(name, lua.create_function(|_, _: MultiValue| Ok(()))?)?;
    }
    cjson.raw_set(
        "encode_invalid_numbers",
        lua.create_function(|_, v: Value| {
            let on = matches!(v, Value::Boolean(true))
                || matches!(&v, Value::String(s) if &*s.as_bytes() == b"on");
            INVALID_NUMBERS.with(|c| c.set(on));
            Ok(on)
        })?,
    )?;
    cjson.raw_set(
        "null",
        Value::LightUserData(mlua::LightUserData(std::ptr::null_mut())),
    )?;
    g.raw_set("cjson", cjson)
}

/// Adds `bit`, `cjson` and `cmsgpack` to the globals.
pub fn install(lua: &Lua, g: &Table) -> mlua::Result<()> {
    install_bit(lua, g)?;
    install_cjson(lua, g)?;
    install_cmsgpack(lua, g)
}

/// lua-cmsgpack's nesting limit: deeper tables are packed as nil.
const MSGPACK_MAX_NESTING: usize = 16;

fn mp_int(n: i64, out: &mut Vec<u8>) {
    if n >= 0 {
        if n <= 127 {
            out.push(n as u8);
        } else if n <= 0xff {
            out.extend_from_slice(&[0xcc, n as u8]);
        } else if n <= 0xffff {
            out.push(0xcd);
            out.extend_from_slice(&(n as u16).to_be_bytes());
        } else if n <= 0xffff_ffff {
            out.push(0xce);
            out.extend_from_slice(&(n as u32).to_be_bytes());
        } else {
            out.push(0xcf);
            out.extend_from_slice(&(n as u64).to_be_bytes());
        }
    } else if n >= -32 {
        out.push(n as i8 as u8);
    } else if n >= -128 {
        out.extend_from_slice(&[0xd0, n as i8 as u8]);
    } else if n >= -32768 {
        out.push(0xd1);
        out.extend_from_slice(&(n as i16).to_be_bytes());
    } else if n >= -2_147_483_648 {
        out.push(0xd2);
        out.extend_from_slice(&(n as i32).to_be_bytes());
    } else {
        out.push(0xd3);
        out.extend_from_slice(&n.to_be_bytes());
    }
}

fn mp_number(n: f64, out: &mut Vec<u8>) {
    if n == n.trunc() && (-9.223_372_036_854_776e18..9.223_372_036_854_776e18).contains(&n) {
        mp_int(n as i64, out);
    } else if f64::from(n as f32) == n {
        out.push(0xca);
        out.extend_from_slice(&(n as f32).to_be_bytes());
    } else {
        out.push(0xcb);
        out.extend_from_slice(&n.to_be_bytes());
    }
}

fn mp_len(len: usize, small_tag: u8, small_max: usize, tags: [u8; 3], out: &mut Vec<u8>) {
    if len <= small_max {
        out.push(small_tag | len as u8);
    } else if tags[0] != 0 && len <= 0xff {
        out.extend_from_slice(&[tags[0], len as u8]);
    } else if len <= 0xffff {
        out.push(tags[1]);
        out.extend_from_slice(&(len as u16).to_be_bytes());
    } else {
        out.push(tags[2]);
        out.extend_from_slice(&(len as u32).to_be_bytes());
    }
}

fn mp_encode(v: &Value, out: &mut Vec<u8>, level: usize) -> mlua::Result<()> {
    match v {
        Value::Boolean(b) => out.push(if *b { 0xc3 } else { 0xc2 }),
        Value::Integer(i) => mp_int(*i, out),
        Value::Number(n) => mp_number(*n, out),
        Value::String(s) => {
            let b = s.as_bytes();
            mp_len(b.len(), 0xa0, 31, [0xd9, 0xda, 0xdb], out);
            out.extend_from_slice(&b);
        }
        Value::Table(t) if level < MSGPACK_MAX_NESTING => {
            let mut count = 0usize;
            let mut max = 0i64;
            let mut array = true;
            for pair in t.pairs::<Value, Value>() {
                let (k, _) = pair?;
                let n = match k {
                    Value::Integer(i) => Some(i),
                    Value::Number(n) if n == n.trunc() => Some(n as i64),
                    _ => None,
                };
                match n {
                    Some(n) if n > 0 => {
                        max = max.max(n);
                        count += 1;
                    }
                    _ => {
                        array = false;
                        break;
                    }
                }
            }
            if array && max as usize == count {
                mp_len(count, 0x90, 15, [0, 0xdc, 0xdd], out);
                for i in 1..=count {
                    mp_encode(&t.raw_get::<Value>(i)?, out, level + 1)?;
                }
            } else {
                // Values are encoded as iterated: holding them all would
                // exhaust mlua's reference slots on large tables.
                let n = t.pairs::<Value, Value>().count();
                mp_len(n, 0x80, 15, [0, 0xde, 0xdf], out);
                for pair in t.pairs::<Value, Value>() {
                    let (k, v) = pair?;
                    mp_encode(&k, out, level + 1)?;
                    mp_encode(&v, out, level + 1)?;
                }
            }
        }
        _ => out.push(0xc0),
    }
    Ok(())
}

struct MpDecoder<'a> {
    b: &'a [u8],
    i: usize,
}

impl MpDecoder<'_> {
    fn take(&mut self, n: usize) -> mlua::Result<&[u8]> {
        if self.b.len() - self.i < n {
            return Err(rt("Missing bytes in input."));
        }
        let s = &self.b[self.i..self.i + n];
        self.i += n;
        Ok(s)
    }

    fn uint(&mut self, n: usize) -> mlua::Result<u64> {
        Ok(self
            .take(n)?
            .iter()
            .fold(0u64, |a, &b| a << 8 | u64::from(b)))
    }

    fn value(&mut self, lua: &Lua) -> mlua::Result<Value> {
        let tag = self.take(1)?[0];
        let num = |n: f64| Ok(Value::Number(n));
        match tag {
            0x00..=0x7f => num(f64::from(tag)),
            0xe0..=0xff => num(f64::from(tag as i8)),
            0xcc => num(self.uint(1)? as f64),
            0xcd => num(self.uint(2)? as f64),
            0xce => num(self.uint(4)? as f64),
            0xcf => num(self.uint(8)? as f64),
            0xd0 => num(f64::from(self.uint(1)? as u8 as i8)),
            0xd1 => num(f64::from(self.uint(2)? as u16 as i16)),
            0xd2 => num(f64::from(self.uint(4)? as u32 as i32)),
            0xd3 => num(self.uint(8)? as i64 as f64),
            0xca => num(f64::from(f32::from_bits(self.uint(4)? as u32))),
            0xcb => num(f64::from_bits(self.uint(8)?)),
            0xc0 => Ok(Value::Nil),
            0xc2 => Ok(Value::Boolean(false)),
            0xc3 => Ok(Value::Boolean(true)),
            0xa0..=0xbf => self.string(lua, usize::from(tag & 0x1f)),
            0xd9 | 0xc4 => {
                let n = self.uint(1)? as usize;
                self.string(lua, n)
            }
            0xda | 0xc5 => {
                let n = self.uint(2)? as usize;
                self.string(lua, n)
            }
            0xdb | 0xc6 => {
                let n = self.uint(4)? as usize;
                self.string(lua, n)
            }
            0x90..=0x9f => self.array(lua, usize::from(tag & 0x0f)),
            0xdc => {
                let n = self.uint(2)? as usize;
                self.array(lua, n)
            }
            0xdd => {
                let n = self.uint(4)? as usize;
                self.array(lua, n)
            }
            0x80..=0x8f => self.map(lua, usize::from(tag & 0x0f)),
            0xde => {
                let n = self.uint(2)? as usize;
                self.map(lua, n)
            }
            0xdf => {
                let n = self.uint(4)? as usize;
                self.map(lua, n)
            }
            _ => Err(rt("Bad data format in input.")),
        }
    }

    fn string(&mut self, lua: &Lua, n: usize) -> mlua::Result<Value> {
        let s = self.take(n)?;
        Ok(Value::String(lua.create_string(s)?))
    }

    fn array(&mut self, lua: &Lua, n: usize) -> mlua::Result<Value> {
        let t = lua.create_table()?;
        for i in 1..=n {
            let v = self.value(lua)?;
            t.raw_set(i, v)?;
        }
        Ok(Value::Table(t))
    }

    fn map(&mut self, lua: &Lua, n: usize) -> mlua::Result<Value> {
        let t = lua.create_table()?;
        for _ in 0..n {
            let k = self.value(lua)?;
            let v = self.value(lua)?;
            if k != Value::Nil {
                t.raw_set(k, v)?;
            }
        }
        Ok(Value::Table(t))
    }
}

/// `unpack_limit`: up to `limit` objects (0 = all) from `offset`; the
/// next offset (-1 at the end) then the objects.
fn mp_unpack(
    lua: &Lua,
    s: &[u8],
    limit: usize,
    offset: usize,
    with_offset: bool,
) -> mlua::Result<MultiValue> {
    if offset > s.len() {
        return Err(rt("Start offset greater than input length"));
    }
    let mut d = MpDecoder { b: s, i: offset };
    let mut vals = Vec::new();
    while d.i < s.len() && (limit == 0 || vals.len() < limit) {
        vals.push(d.value(lua)?);
    }
    if with_offset {
        let next = if d.i >= s.len() { -1 } else { d.i as i64 };
        vals.insert(0, Value::Integer(next));
    }
    Ok(MultiValue::from_iter(vals))
}

fn install_cmsgpack(lua: &Lua, g: &Table) -> mlua::Result<()> {
    let m = lua.create_table()?;
    m.raw_set(
        "pack",
        lua.create_function(|lua, args: MultiValue| {
            if args.is_empty() {
                return Err(rt("MessagePack pack needs input."));
            }
            let mut out = Vec::new();
            for a in args.iter() {
                mp_encode(a, &mut out, 0)?;
            }
            lua.create_string(&out)
        })?,
    )?;
    m.raw_set(
        "unpack",
        lua.create_function(|lua, s: mlua::LuaString| mp_unpack(lua, &s.as_bytes(), 0, 0, false))?,
    )?;
    m.raw_set(
        "unpack_one",
        lua.create_function(|lua, (s, off): (mlua::LuaString, Option<i64>)| {
            mp_unpack(
                lua,
                &s.as_bytes(),
                1,
                off.unwrap_or(0).max(0) as usize,
                true,
            )
        })?,
    )?;
    m.raw_set(
        "unpack_limit",
        lua.create_function(
            |lua, (s, limit, off): (mlua::LuaString, Option<i64>, Option<i64>)| {
                mp_unpack(
                    lua,
                    &s.as_bytes(),
                    limit.unwrap_or(0).max(0) as usize,
                    off.unwrap_or(0).max(0) as usize,
                    true,
                )
            },
        )?,
    )?;
    g.raw_set("cmsgpack", m)
}
