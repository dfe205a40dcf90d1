//! One user's rules: flags, password hashes and selectors, changed by
//! `ACL SETUSER` operations and described back in the same syntax (Redis's
//! `ACLSetUser`, `ACLSetSelector` and `ACLDescribeUser`).

use std::collections::BTreeMap;
use std::fmt::Write as _;

use sha2::{Digest, Sha256};

use super::index::{index, lookup, order, CATEGORIES};

/// Key pattern permission to read (`%R~`).
pub const READ: u8 = 1;
/// Key pattern permission to write (`%W~`).
pub const WRITE: u8 = 2;
/// Both (`~`).
pub const ALL: u8 = READ | WRITE;

/// User flags, in the order `ACL LIST` shows them (Redis's `ACLUserFlags`).
pub mod uflag {
    pub const ENABLED: u8 = 1;
    pub const DISABLED: u8 = 2;
    pub const NOPASS: u8 = 4;
    pub const SKIP_SANITIZE: u8 = 8;
    pub const SANITIZE: u8 = 16;
    pub const NAMES: [(u8, &str); 5] = [
        (ENABLED, "on"),
        (DISABLED, "off"),
        (NOPASS, "nopass"),
        (SKIP_SANITIZE, "skip-sanitize-payload"),
        (SANITIZE, "sanitize-payload"),
    ];
}

/// Why an operation was refused; the texts are Redis's
/// `ACLSetUserStringError`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum RuleError {
    #[error("Unknown command or category name in ACL")]
    NoSuchCommand,
    #[error("Syntax error")]
    Syntax,
    #[error("Adding a pattern after the * pattern (or the 'allkeys' flag) is not valid and does not have any effect. Try 'resetkeys' to start with an empty list of patterns")]
    AfterAllKeys,
    #[error("Adding a pattern after the * pattern (or the 'allchannels' flag) is not valid and does not have any effect. Try 'resetchannels' to start with an empty list of channels")]
    AfterAllChannels,
    #[error("The password you are trying to remove from the user does not exist")]
    NoSuchPassword,
    #[error("The password hash must be exactly 64 characters and contain only lowercase hexadecimal characters")]
    BadHash,
    #[error("Allowing first-arg of a subcommand is not supported")]
    SubcommandFirstArg,
}

/// A key pattern and the access it grants.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KeyPattern {
    pub flags: u8,
    pub pattern: Vec<u8>,
}

/// A set of permissions; a command runs if any of a user's selectors
/// allows it (Redis 7's `aclSelector`). The first is the root selector,
/// the rules written outside parentheses.
#[derive(Clone, Debug)]
pub struct Selector {
    pub allkeys: bool,
    pub allchannels: bool,
    pub allcommands: bool,
    /// One bit per command id (`Command::id`); bit 0 stands for commands
    /// added later, set only by `+@all` (Redis's reserved last bit).
    pub allowed: Vec<u64>,
    /// `+select|0`: first arguments allowed for an otherwise denied command.
    pub firstargs: BTreeMap<u32, Vec<Vec<u8>>>,
    pub patterns: Vec<KeyPattern>,
    pub channels: Vec<Vec<u8>>,
}

fn words() -> usize {
    index().len().div_ceil(64)
}

impl Selector {
    /// A selector that allows nothing; `allchannels` is `acl-pubsub-default`.
    pub fn new(allchannels: bool) -> Self {
        Selector {
            allkeys: false,
            allchannels,
            allcommands: false,
            allowed: vec![0; words()],
            firstargs: BTreeMap::new(),
            patterns: Vec::new(),
            channels: Vec::new(),
        }
    }

    /// Whether the command bit `id` is set.
    pub fn bit(&self, id: u32) -> bool {
        let i = id as usize;
        self.allowed
            .get(i / 64)
            .is_some_and(|w| w & (1 << (i % 64)) != 0)
    }

    fn set_bit(&mut self, id: u32, on: bool) {
        let i = id as usize;
        if let Some(w) = self.allowed.get_mut(i / 64) {
            if on {
                *w |= 1 << (i % 64);
            } else {
                *w &= !(1 << (i % 64));
                self.allcommands = false;
            }
        }
    }

    /// Allows or denies a command and, for a container, its subcommands
    /// (Redis's `ACLChangeSelectorPerm`).
    fn change(&mut self, id: u32, on: bool) {
        self.set_bit(id, on);
        self.firstargs.remove(&id);
        for &s in &index()[id as usize].subs {
            self.set_bit(s, on);
        }
    }

    fn set_category(&mut self, cat: u32, on: bool) {
        for (id, c) in index().iter().enumerate() {
            if c.exists && !c.module && c.cats & cat != 0 {
                self.change(id as u32, on);
            }
        }
    }

    fn count_category(&self, cat: u32) -> (usize, usize) {
        let (mut on, mut off) = (0, 0);
        for (id, c) in index().iter().enumerate() {
            if c.exists && c.cats & cat != 0 {
                if self.bit(id as u32) {
                    on += 1;
                } else {
                    off += 1;
                }
            }
        }
        (on, off)
    }

    /// Applies one selector rule (Redis's `ACLSetSelector`).
    pub fn apply(&mut self, op: &[u8]) -> Result<(), RuleError> {
        let is = |w: &str| op.eq_ignore_ascii_case(w.as_bytes());
        if is("allkeys") || op == b"~*" {
            self.allkeys = true;
            self.patterns.clear();
        } else if is("resetkeys") {
            self.allkeys = false;
            self.patterns.clear();
        } else if is("allchannels") || op == b"&*" {
            self.allchannels = true;
            self.channels.clear();
        } else if is("resetchannels") {
            self.allchannels = false;
            self.channels.clear();
        } else if is("allcommands") || is("+@all") {
            self.allowed.iter_mut().for_each(|w| *w = u64::MAX);
            self.allcommands = true;
            self.firstargs.clear();
        } else if is("nocommands") || is("-@all") {
            self.allowed.iter_mut().for_each(|w| *w = 0);
            self.allcommands = false;
            self.firstargs.clear();
        } else if op.first() == Some(&b'~') || op.first() == Some(&b'%') {
            if self.allkeys {
                return Err(RuleError::AfterAllKeys);
            }
            let mut flags = 0;
            let mut off = 1;
            if op[0] == b'%' {
                while off < op.len() {
                    match op[off].to_ascii_uppercase() {
                        b'R' if flags & READ == 0 => flags |= READ,
                        b'W' if flags & WRITE == 0 => flags |= WRITE,
                        b'~' => {
                            off += 1;
                            break;
                        }
                        _ => return Err(RuleError::Syntax),
                    }
                    off += 1;
                }
                // Redis 7.0 accepts a bare `%`, then fails to describe it.
                if flags == 0 {
                    return Err(RuleError::Syntax);
                }
            } else {
                flags = ALL;
            }
            let pattern = &op[off..];
            if has_spaces(pattern) {
                return Err(RuleError::Syntax);
            }
            match self.patterns.iter_mut().find(|p| p.pattern == pattern) {
                Some(p) => p.flags |= flags,
                None => self.patterns.push(KeyPattern {
                    flags,
                    pattern: pattern.to_vec(),
                }),
            }
            self.allkeys = false;
        } else if op.first() == Some(&b'&') {
            if self.allchannels {
                return Err(RuleError::AfterAllChannels);
            }
            let pattern = &op[1..];
            if has_spaces(pattern) {
                return Err(RuleError::Syntax);
            }
            if !self.channels.iter().any(|c| c == pattern) {
                self.channels.push(pattern.to_vec());
            }
            self.allchannels = false;
        } else if op.first() == Some(&b'+') && op.get(1) != Some(&b'@') {
            let name = &op[1..];
            match name.iter().rposition(|&b| b == b'|') {
                None => {
                    let id = lookup(name).ok_or(RuleError::NoSuchCommand)?;
                    self.change(id, true);
                }
                Some(bar) => {
                    let (base, sub) = (&name[..bar], &name[bar + 1..]);
                    let id = lookup(base).ok_or(RuleError::NoSuchCommand)?;
                    let info = &index()[id as usize];
                    if info.parent {
                        return Err(RuleError::SubcommandFirstArg);
                    }
                    if sub.is_empty() {
                        return Err(RuleError::Syntax);
                    }
                    if info.subs.is_empty() {
                        // `+select|0`: Redis logs this form as deprecated.
                        tracing::warn!(
                            offender = %String::from_utf8_lossy(name),
                            "Deprecation warning: Allowing a first arg of an otherwise blocked command is a misuse of ACL and may get disabled in the future"
                        );
                        let list = self.firstargs.entry(id).or_default();
                        if !list.iter().any(|a| a.eq_ignore_ascii_case(sub)) {
                            list.push(sub.to_vec());
                        }
                    } else {
                        let sid = lookup(name).ok_or(RuleError::NoSuchCommand)?;
                        self.change(sid, true);
                    }
                }
            }
        } else if op.first() == Some(&b'-') && op.get(1) != Some(&b'@') {
            let id = lookup(&op[1..]).ok_or(RuleError::NoSuchCommand)?;
            self.change(id, false);
        } else if (op.first() == Some(&b'+') || op.first() == Some(&b'-'))
            && op.get(1) == Some(&b'@')
        {
            let cat = category(&op[2..]).ok_or(RuleError::NoSuchCommand)?;
            self.set_category(cat, op[0] == b'+');
        } else {
            return Err(RuleError::Syntax);
        }
        Ok(())
    }

    /// The command rules that rebuild this selector's bitmap, starting
    /// with `+@all` or `-@all` and then the best-fitting categories
    /// (Redis's `ACLDescribeSelectorCommandRules`).
    pub fn describe_commands(&self) -> String {
        let mut rules = String::new();
        let additive = !self.bit(0);
        let mut fake = Selector::new(false);
        if additive {
            rules.push_str("-@all ");
            let _ = fake.apply(b"-@all");
        } else {
            rules.push_str("+@all ");
            let _ = fake.apply(b"+@all");
        }
        let mut temp = self.clone();
        let mut applied = [false; CATEGORIES.len()];
        loop {
            let mut best = None;
            let (mut mindiff, mut maxsame) = (usize::MAX, 0);
            for (j, _) in CATEGORIES.iter().enumerate() {
                if applied[j] {
                    continue;
                }
                let (on, off) = temp.count_category(1 << j);
                let (diff, same) = if additive { (off, on) } else { (on, off) };
                if same > diff && (diff < mindiff || (diff == mindiff && same > maxsame)) {
                    best = Some(j);
                    mindiff = diff;
                    maxsame = same;
                }
            }
            let Some(j) = best else { break };
            fake.set_category(1 << j, additive);
            temp.set_category(1 << j, !additive);
            let _ = write!(
                rules,
                "{}@{} ",
                if additive { '+' } else { '-' },
                CATEGORIES[j]
            );
            applied[j] = true;
        }
        for &id in order() {
            let c = &index()[id as usize];
            let mine = self.bit(id);
            if mine != fake.bit(id) {
                let _ = write!(rules, "{}{} ", if mine { '+' } else { '-' }, c.name);
                fake.change(id, mine);
            }
            if !mine {
                for a in self.firstargs.get(&id).into_iter().flatten() {
                    let _ = write!(rules, "+{}|{} ", c.name, String::from_utf8_lossy(a));
                }
            }
        }
        rules.pop();
        rules
    }

    /// `~pattern ... resetchannels &channel ... <command rules>`
    /// (Redis's `ACLDescribeSelector`).
    pub fn describe(&self) -> Vec<u8> {
        let mut out = Vec::new();
        if self.allkeys {
            out.extend_from_slice(b"~* ");
        } else {
            for p in &self.patterns {
                out.extend_from_slice(&pattern_text(p));
                out.push(b' ');
            }
        }
        if self.allchannels {
            out.extend_from_slice(b"&* ");
        } else {
            out.extend_from_slice(b"resetchannels ");
            for c in &self.channels {
                out.push(b'&');
                out.extend_from_slice(c);
                out.push(b' ');
            }
        }
        out.extend_from_slice(self.describe_commands().as_bytes());
        out
    }

    /// `ACL GETUSER`'s `keys` field.
    pub fn keys_text(&self) -> Vec<u8> {
        if self.allkeys {
            return b"~*".to_vec();
        }
        let parts: Vec<Vec<u8>> = self.patterns.iter().map(pattern_text).collect();
        parts.join(&b' ')
    }

    /// `ACL GETUSER`'s `channels` field.
    pub fn channels_text(&self) -> Vec<u8> {
        if self.allchannels {
            return b"&*".to_vec();
        }
        let parts: Vec<Vec<u8>> = self
            .channels
            .iter()
            .map(|c| [&b"&"[..], c].concat())
            .collect();
        parts.join(&b' ')
    }
}

fn pattern_text(p: &KeyPattern) -> Vec<u8> {
    let prefix: &[u8] = match p.flags {
        READ => b"%R~",
        WRITE => b"%W~",
        _ => b"~",
    };
    [prefix, &p.pattern].concat()
}

/// Whether a name or pattern holds whitespace or NUL, which rules may not
/// (Redis's `ACLStringHasSpaces`).
pub fn has_spaces(s: &[u8]) -> bool {
    s.iter()
        .any(|&b| b == 0 || matches!(b, b' ' | b'\t' | b'\n' | b'\r' | b'\x0b' | b'\x0c'))
}

/// The bit of a category name, case-insensitively.
pub fn category(name: &[u8]) -> Option<u32> {
    CATEGORIES
        .iter()
        .position(|c| name.eq_ignore_ascii_case(c.as_bytes()))
        .map(|j| 1 << j)
}

/// The hex SHA-256 under which passwords are kept (Redis's `ACLHashPassword`).
pub fn hash_password(clear: &[u8]) -> String {
    let digest = Sha256::digest(clear);
    let mut s = String::with_capacity(64);
    for b in digest {
        let _ = write!(s, "{b:02x}");
    }
    s
}

fn valid_hash(h: &[u8]) -> bool {
    h.len() == 64 && h.iter().all(|c| matches!(c, b'0'..=b'9' | b'a'..=b'f'))
}

/// The hash a password rule names: hashed from clear text after `clear`
/// (`>`/`<`), or given as hex after `#`/`!`.
fn rule_hash(op: &[u8], clear: u8) -> Result<String, RuleError> {
    if op[0] == clear {
        Ok(hash_password(&op[1..]))
    } else if valid_hash(&op[1..]) {
        Ok(String::from_utf8_lossy(&op[1..]).into_owned())
    } else {
        Err(RuleError::BadHash)
    }
}

/// A user's rules.
#[derive(Clone, Debug)]
pub struct User {
    pub flags: u8,
    pub passwords: Vec<String>,
    /// The root selector first, then those added with `(...)`.
    pub selectors: Vec<Selector>,
}

impl User {
    /// A new user: off, no passwords, no permissions (Redis's `ACLCreateUser`).
    pub fn new(pubsub_all: bool) -> Self {
        User {
            flags: uflag::DISABLED,
            passwords: Vec::new(),
            selectors: vec![Selector::new(pubsub_all)],
        }
    }

    /// The default user of a fresh server: on, nopass, everything.
    pub fn default_user(pubsub_all: bool) -> Self {
        let mut u = User::new(pubsub_all);
        for op in ["+@all", "~*", "&*", "on", "nopass"] {
            let _ = u.apply(op.as_bytes(), pubsub_all);
        }
        u
    }

    /// Whether a [`uflag`] is set.
    pub fn has(&self, f: u8) -> bool {
        self.flags & f != 0
    }

    /// Whether a client of this user needs no check at all: one selector
    /// allows every command, key and channel.
    pub fn unrestricted(&self) -> bool {
        self.selectors
            .iter()
            .any(|s| s.allcommands && s.allkeys && s.allchannels)
    }

    /// Applies one operation (Redis's `ACLSetUser`).
    pub fn apply(&mut self, op: &[u8], pubsub_all: bool) -> Result<(), RuleError> {
        let is = |w: &str| op.eq_ignore_ascii_case(w.as_bytes());
        if op.is_empty() {
            return Ok(());
        }
        if is("on") {
            self.flags = (self.flags | uflag::ENABLED) & !uflag::DISABLED;
        } else if is("off") {
            self.flags = (self.flags | uflag::DISABLED) & !uflag::ENABLED;
        } else if is("skip-sanitize-payload") {
            self.flags = (self.flags | uflag::SKIP_SANITIZE) & !uflag::SANITIZE;
        } else if is("sanitize-payload") {
            self.flags = (self.flags | uflag::SANITIZE) & !uflag::SKIP_SANITIZE;
        } else if is("nopass") {
            self.flags |= uflag::NOPASS;
            self.passwords.clear();
        } else if is("resetpass") {
            self.flags &= !uflag::NOPASS;
            self.passwords.clear();
        } else if op[0] == b'>' || op[0] == b'#' {
            let hash = rule_hash(op, b'>')?;
            if !self.passwords.contains(&hash) {
                self.passwords.push(hash);
            }
            self.flags &= !uflag::NOPASS;
        } else if op[0] == b'<' || op[0] == b'!' {
            let hash = rule_hash(op, b'<')?;
            let at = self
                .passwords
                .iter()
                .position(|p| *p == hash)
                .ok_or(RuleError::NoSuchPassword)?;
            self.passwords.remove(at);
        } else if op[0] == b'(' && op[op.len() - 1] == b')' {
            let inner = &op[1..op.len() - 1];
            let args = ferrite_protocol::split_args(inner).ok_or(RuleError::Syntax)?;
            let mut s = Selector::new(pubsub_all);
            for a in args {
                s.apply(&a)?;
            }
            self.selectors.push(s);
        } else if is("clearselectors") {
            self.selectors.truncate(1);
        } else if is("reset") {
            for op in ["resetpass", "resetkeys", "resetchannels"] {
                let _ = self.apply(op.as_bytes(), pubsub_all);
            }
            if pubsub_all {
                let _ = self.apply(b"allchannels", pubsub_all);
            }
            for op in ["off", "sanitize-payload", "clearselectors", "-@all"] {
                let _ = self.apply(op.as_bytes(), pubsub_all);
            }
        } else {
            self.selectors[0].apply(op)?;
        }
        Ok(())
    }

    /// The rules in `ACL LIST` / ACL file syntax, without `user <name>`
    /// (Redis's `ACLDescribeUser`).
    pub fn describe(&self) -> Vec<u8> {
        let mut out = Vec::new();
        for (f, name) in uflag::NAMES {
            if self.has(f) {
                out.extend_from_slice(name.as_bytes());
                out.push(b' ');
            }
        }
        for p in &self.passwords {
            out.push(b'#');
            out.extend_from_slice(p.as_bytes());
            out.push(b' ');
        }
        for (i, s) in self.selectors.iter().enumerate() {
            if i == 0 {
                out.extend_from_slice(&s.describe());
            } else {
                out.extend_from_slice(b" (");
                out.extend_from_slice(&s.describe());
                out.push(b')');
            }
        }
        out
    }

    /// Whether `pass` opens this user (disabled users open to nothing).
    pub fn accepts(&self, pass: &[u8]) -> bool {
        if self.has(uflag::DISABLED) {
            return false;
        }
        if self.has(uflag::NOPASS) {
            return true;
        }
        let h = hash_password(pass);
        // Compared without an early exit, as Redis's `time_independent_strcmp`.
        self.passwords.iter().fold(false, |ok, p| {
            ok | (p.len() == h.len()
                && p.bytes().zip(h.bytes()).fold(0u8, |d, (a, b)| d | (a ^ b)) == 0)
        })
    }
}

/// Joins selector rules spread over several arguments (`(~x`, `+get)`) into
/// one (Redis's `ACLMergeSelectorArguments`); `Err(i)` names the argument
/// whose parenthesis is never closed.
pub fn merge_selector_args(args: &[&[u8]]) -> Result<Vec<Vec<u8>>, usize> {
    let mut out = Vec::with_capacity(args.len());
    let mut open: Option<(usize, Vec<u8>)> = None;
    for (j, op) in args.iter().enumerate() {
        if let Some((_, sel)) = open.as_mut() {
            sel.push(b' ');
            sel.extend_from_slice(op);
            if op.last() == Some(&b')') {
                out.push(open.take().map(|(_, s)| s).unwrap_or_default());
            }
            continue;
        }
        if op.first() == Some(&b'(') && op.last() != Some(&b')') {
            open = Some((j, op.to_vec()));
            continue;
        }
        out.push(op.to_vec());
    }
    match open {
        Some((j, _)) => Err(j),
        None => Ok(out),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn user(ops: &[&str]) -> User {
        let mut u = User::new(false);
        for op in ops {
            u.apply(op.as_bytes(), false).unwrap();
        }
        u
    }

    fn text(u: &User) -> String {
        String::from_utf8(u.describe()).unwrap()
    }

    #[test]
    fn a_new_user_is_described_as_redis_does() {
        assert_eq!(text(&User::new(false)), "off resetchannels -@all");
        assert_eq!(text(&User::default_user(false)), "on nopass ~* &* +@all");
        assert_eq!(
            text(&user(&["reset"])),
            "off sanitize-payload resetchannels -@all"
        );
    }

    #[test]
    fn rules_come_back_as_redis_writes_them() {
        // Redis lists single commands in its dict's (seeded) order; Ferrite
        // by name. Everything else is Redis 7.0.15's text.
        let u = user(&[
            "on",
            ">pw",
            "~foo*",
            "%R~bar",
            "&chan",
            "+get",
            "+@hash",
            "-hset",
            "+select|0",
            "(+set ~x*)",
        ]);
        assert_eq!(
            text(&u),
            "on #30c952fab122c3f9759f02a6d95c3758b246b4fee239957b2d4fee46e26170c4 ~foo* %R~bar resetchannels &chan -@all +@hash +get -hset +select|0 (~x* resetchannels -@all +set)"
        );
    }

    #[test]
    fn describing_then_applying_gives_the_same_bitmap() {
        let u = user(&[
            "+@all",
            "-@dangerous",
            "+config|get",
            "-@write",
            "+set",
            "-get",
        ]);
        let rules = u.selectors[0].describe_commands();
        let mut back = User::new(false);
        for op in rules.split(' ') {
            back.apply(op.as_bytes(), false).unwrap();
        }
        assert_eq!(back.selectors[0].allowed, u.selectors[0].allowed);
    }

    #[test]
    fn errors_are_redis_texts() {
        let mut u = User::new(false);
        assert_eq!(u.apply(b"+nosuch", false), Err(RuleError::NoSuchCommand));
        assert_eq!(u.apply(b"+@nosuch", false), Err(RuleError::NoSuchCommand));
        assert_eq!(u.apply(b"~a b", false), Err(RuleError::Syntax));
        assert_eq!(u.apply(b"#abc", false), Err(RuleError::BadHash));
        assert_eq!(u.apply(b"<nope", false), Err(RuleError::NoSuchPassword));
        assert_eq!(
            u.apply(b"+config|get|x", false),
            Err(RuleError::SubcommandFirstArg)
        );
        assert_eq!(u.apply(b"+debug|", false), Err(RuleError::Syntax));
        u.apply(b"allkeys", false).unwrap();
        assert_eq!(u.apply(b"~x", false), Err(RuleError::AfterAllKeys));
        u.apply(b"allchannels", false).unwrap();
        assert_eq!(u.apply(b"&x", false), Err(RuleError::AfterAllChannels));
    }

    #[test]
    fn passwords_are_checked_by_hash() {
        let u = user(&["on", ">secret"]);
        assert!(u.accepts(b"secret"));
        assert!(!u.accepts(b"other"));
        let off = user(&["off", "nopass"]);
        assert!(!off.accepts(b""));
    }

    #[test]
    fn selectors_spread_over_arguments_are_merged() {
        let args: Vec<&[u8]> = vec![b"on", b"(~x", b"+get)", b"+set"];
        assert_eq!(
            merge_selector_args(&args).unwrap(),
            vec![b"on".to_vec(), b"(~x +get)".to_vec(), b"+set".to_vec()]
        );
        let bad: Vec<&[u8]> = vec![b"on", b"(~x"];
        assert_eq!(merge_selector_args(&bad), Err(1));
    }
}
