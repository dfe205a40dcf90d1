//! Access control lists (Redis 6/7's ACL): users, their passwords and the
//! commands, keys and channels each may use.
//!
//! Every connection runs as a user ([`UserCell`]). A user whose rules allow
//! everything (the default user of a fresh server) is marked `open`, so the
//! dispatcher's check costs one atomic load; anyone else's command goes
//! through [`check`] as Redis's `ACLCheckAllUserCommandPerm`. Rules change
//! in place (`ACL SETUSER` affects connected clients at once, as in Redis)
//! by swapping the cell's rule set.

pub mod index;
pub mod log;
pub mod rules;

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use bytes::Bytes;
use parking_lot::{Mutex, RwLock};

use crate::command::table::{flag, Command};
use rules::{has_spaces, merge_selector_args, Selector, READ, WRITE};
pub use rules::{RuleError, User};

/// A connection's copy of its user's rules, keyed by the user's cell
/// address and generation.
pub type RulesCache = ((usize, u64), Arc<User>);

/// A user as clients hold it: its name and its current rules.
pub struct UserCell {
    pub name: Bytes,
    rules: RwLock<Arc<User>>,
    /// The rules allow every command, key and channel: nothing to check.
    open: AtomicBool,
    /// The rules need a password or the user is off (meaningful for the
    /// default user: new connections start unauthenticated).
    needs_auth: AtomicBool,
    /// Deleted, or replaced by `ACL LOAD`: no new login may keep it.
    removed: AtomicBool,
    /// Bumped by every change, so a connection can keep its own copy of
    /// the rules ([`UserCell::cached`]) instead of locking per command.
    generation: std::sync::atomic::AtomicU64,
}

impl UserCell {
    fn new(name: &[u8], user: User) -> Arc<Self> {
        let c = Arc::new(UserCell {
            name: Bytes::copy_from_slice(name),
            rules: RwLock::new(Arc::new(User::new(false))),
            open: AtomicBool::new(false),
            needs_auth: AtomicBool::new(true),
            removed: AtomicBool::new(false),
            generation: std::sync::atomic::AtomicU64::new(0),
        });
        c.set(user);
        c
    }

    /// The current rules.
    pub fn rules(&self) -> Arc<User> {
        self.rules.read().clone()
    }

    /// Swaps the rules; the flags change under the same lock, so two
    /// concurrent changes cannot leave one's flags with the other's rules.
    fn set(&self, u: User) {
        let mut rules = self.rules.write();
        self.open.store(u.unrestricted(), Ordering::Relaxed);
        self.needs_auth.store(
            !u.has(rules::uflag::NOPASS) || u.has(rules::uflag::DISABLED),
            Ordering::Relaxed,
        );
        *rules = Arc::new(u);
        self.generation.fetch_add(1, Ordering::Release);
    }

    /// The current rules through a connection's own copy, refreshed only
    /// when they changed: a restricted user's check takes no lock and
    /// touches no shared reference count.
    /// The copy is keyed by this cell's address too, so a connection that
    /// logs in as another user never reads the previous user's rules.
    pub fn cached<'a>(&self, cache: &'a mut Option<RulesCache>) -> &'a User {
        let key = (
            self as *const UserCell as usize,
            self.generation.load(Ordering::Acquire),
        );
        if cache.as_ref().is_some_and(|c| c.0 != key) {
            *cache = None;
        }
        &cache.get_or_insert_with(|| (key, self.rules())).1
    }

    /// Deleted or replaced since it was looked up.
    pub fn removed(&self) -> bool {
        self.removed.load(Ordering::SeqCst)
    }

    fn remove(&self) {
        self.removed.store(true, Ordering::SeqCst);
    }

    /// Nothing to check for this user's commands.
    #[inline]
    pub fn open(&self) -> bool {
        self.open.load(Ordering::Relaxed)
    }

    /// Whether a connection as this user must authenticate first (Redis's
    /// `authRequired` for the default user).
    #[inline]
    pub fn needs_auth(&self) -> bool {
        self.needs_auth.load(Ordering::Relaxed)
    }
}

/// Why a command was refused, with the argument at fault.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Denied {
    Command,
    Key(usize),
    Channel(usize),
}

impl Denied {
    fn rank(self) -> (u8, usize) {
        match self {
            Denied::Command => (1, 0),
            Denied::Key(i) => (2, i),
            Denied::Channel(i) => (4, i),
        }
    }

    /// The dispatcher's `-NOPERM` text (Redis's `processCommand`).
    pub fn message(self, cmd: &Command) -> String {
        match self {
            Denied::Command => format!(
                "NOPERM this user has no permissions to run the '{}' command",
                cmd.name()
            ),
            Denied::Key(_) => {
                "NOPERM this user has no permissions to access one of the keys used as arguments"
                    .into()
            }
            Denied::Channel(_) => {
                "NOPERM this user has no permissions to access one of the channels used as arguments"
                    .into()
            }
        }
    }

    /// A script's error text (Redis's `getAclErrorMessage`).
    pub fn script_message(self) -> &'static str {
        match self {
            Denied::Command => "can't run this command or subcommand",
            Denied::Key(_) => {
                "can't access at least one of the keys mentioned in the command arguments"
            }
            Denied::Channel(_) => "can't publish to the channel mentioned in the command",
        }
    }

    /// `EXEC`'s reason when the rules changed after queueing.
    pub fn exec_reason(self) -> &'static str {
        match self {
            Denied::Command => "no permission to execute the command or subcommand",
            Denied::Key(_) => "no permission to touch the specified keys",
            Denied::Channel(_) => "no permission to access one of the channels used as arguments",
        }
    }

    /// The `ACL LOG` reason.
    pub fn reason(self) -> log::Reason {
        match self {
            Denied::Command => log::Reason::Command,
            Denied::Key(_) => log::Reason::Key,
            Denied::Channel(_) => log::Reason::Channel,
        }
    }

    /// The argument an `ACL LOG` entry names (the command's full name for
    /// a denied command).
    pub fn object(self, cmd: &Command, argv: &[Bytes]) -> Vec<u8> {
        match self {
            Denied::Command => cmd.name().as_bytes().to_vec(),
            Denied::Key(i) | Denied::Channel(i) => {
                argv.get(i).map(|a| a.to_vec()).unwrap_or_default()
            }
        }
    }
}

/// The access a key spec's flags ask for (Redis's `ACLSelectorCheckKey`).
fn key_access(flags: &[&str]) -> u8 {
    flags.iter().fold(0, |acc, f| {
        acc | match *f {
            "access" => READ,
            "insert" | "delete" | "update" => WRITE,
            _ => 0,
        }
    })
}

fn key_allowed(s: &Selector, key: &[u8], access: u8) -> bool {
    s.allkeys
        || s.patterns.iter().any(|p| {
            p.flags & access == access && ferrite_storage::glob::glob_match(&p.pattern, key, false)
        })
}

/// Whether `channel` (a pattern compared literally, when `is_pattern`)
/// matches one of the allowed channel patterns (Redis's
/// `ACLCheckChannelAgainstList`).
pub fn channel_in(list: &[Vec<u8>], channel: &[u8], is_pattern: bool) -> bool {
    channel_allowed(list, channel, is_pattern)
}

fn channel_allowed(list: &[Vec<u8>], channel: &[u8], is_pattern: bool) -> bool {
    list.iter().any(|p| {
        if is_pattern {
            p.as_slice() == channel
        } else {
            ferrite_storage::glob::glob_match(p, channel, false)
        }
    })
}

/// The channel arguments a command publishes or subscribes to: `(first,
/// count or all, is_pattern)` (Redis's `commands_with_channels`).
fn channel_args(cmd: &Command) -> Option<(usize, Option<usize>, bool)> {
    match cmd.name() {
        "subscribe" | "ssubscribe" => Some((1, None, false)),
        "psubscribe" => Some((1, None, true)),
        "publish" | "spublish" => Some((1, Some(1), false)),
        _ => None,
    }
}

/// Whether some key spec names a real key (a shard channel's is `not_key`),
/// as Redis's `doesCommandHaveKeys`.
fn has_keys(cmd: &Command) -> bool {
    cmd.getkeys.is_some()
        || cmd
            .meta
            .key_specs
            .iter()
            .any(|k| !k.flags.contains(&"not_key"))
}

fn check_selector(
    s: &Selector,
    cmd: &Command,
    argv: &[Bytes],
    keys: &mut Option<crate::command::table::KeyRefs>,
) -> Result<(), Denied> {
    if !s.allcommands && !cmd.has(flag::NO_AUTH) && !s.bit(cmd.id) {
        let first = argv.get(if cmd.name().contains('|') { 2 } else { 1 });
        let allowed = match (first, s.firstargs.get(&cmd.id)) {
            (Some(a), Some(list)) => list.iter().any(|x| x.eq_ignore_ascii_case(a)),
            _ => false,
        };
        if !allowed {
            return Err(Denied::Command);
        }
    }
    if !s.allkeys && has_keys(cmd) {
        let keys = keys.get_or_insert_with(|| cmd.keys(argv));
        for &(i, flags) in keys.iter() {
            if flags.contains(&"not_key") {
                continue;
            }
            if let Some(k) = argv.get(i) {
                if !key_allowed(s, k, key_access(flags)) {
                    return Err(Denied::Key(i));
                }
            }
        }
    }
    if !s.allchannels {
        if let Some((first, count, is_pattern)) = channel_args(cmd) {
            let end = count.map_or(argv.len(), |c| (first + c).min(argv.len()));
            for (i, ch) in argv.iter().enumerate().take(end).skip(first) {
                if !channel_allowed(&s.channels, ch, is_pattern) {
                    return Err(Denied::Channel(i));
                }
            }
        }
    }
    Ok(())
}

/// Whether `user` may run `cmd` with `argv`; on refusal, the error of the
/// selector that got furthest (Redis's `ACLCheckAllUserCommandPerm`).
pub fn check(user: &User, cmd: &Command, argv: &[Bytes]) -> Result<(), Denied> {
    let mut keys = None;
    let mut worst = Denied::Command;
    for s in &user.selectors {
        match check_selector(s, cmd, argv, &mut keys) {
            Ok(()) => return Ok(()),
            Err(d) => {
                if d.rank() > worst.rank() {
                    worst = d;
                }
            }
        }
    }
    Err(worst)
}

/// Whether some selector lets `user` run `cmd` and read every key, which
/// `SORT ... BY/GET` need (Redis's `ACLUserCheckCmdWithUnrestrictedKeyAccess`).
pub fn can_read_all_keys(user: &User, cmd: &Command, argv: &[Bytes]) -> bool {
    let mut keys = None;
    user.selectors.iter().any(|s| {
        check_selector(s, cmd, argv, &mut keys).is_ok()
            && (s.allkeys
                || s.patterns
                    .iter()
                    .any(|p| p.flags & READ == READ && p.pattern == b"*"))
    })
}

/// Whether `user` may still use a channel it subscribed to.
pub fn channel_permitted(user: &User, channel: &[u8], is_pattern: bool) -> bool {
    user.selectors
        .iter()
        .any(|s| s.allchannels || channel_allowed(&s.channels, channel, is_pattern))
}

/// The users, the ACL log and the default user every connection starts as.
pub struct Acl {
    users: RwLock<BTreeMap<Vec<u8>, Arc<UserCell>>>,
    default: Arc<UserCell>,
    pub log: Mutex<log::Log>,
    /// `acl-pubsub-default allchannels`: new users may use every channel.
    pub pubsub_all: AtomicBool,
    /// The `requirepass` last applied to the default user, so that other
    /// `CONFIG SET`s leave rules set by `ACL SETUSER default` alone.
    applied_requirepass: Mutex<Option<String>>,
}

impl Default for Acl {
    fn default() -> Self {
        let default = UserCell::new(b"default", User::default_user(false));
        let mut users = BTreeMap::new();
        users.insert(b"default".to_vec(), default.clone());
        Acl {
            users: RwLock::new(users),
            default,
            log: Mutex::new(log::Log::default()),
            pubsub_all: AtomicBool::new(false),
            applied_requirepass: Mutex::new(None),
        }
    }
}

impl Acl {
    /// The user new connections start as.
    pub fn default_user(&self) -> Arc<UserCell> {
        self.default.clone()
    }

    /// The user called `name`, if any.
    pub fn get(&self, name: &[u8]) -> Option<Arc<UserCell>> {
        self.users.read().get(name).cloned()
    }

    /// Every user, by name.
    pub fn users(&self) -> Vec<Arc<UserCell>> {
        self.users.read().values().cloned().collect()
    }

    fn pubsub_all(&self) -> bool {
        self.pubsub_all.load(Ordering::Relaxed)
    }

    /// The user `name` opens with `pass`, if any (Redis's
    /// `ACLCheckUserCredentials`).
    pub fn authenticate(&self, name: &[u8], pass: &[u8]) -> Option<Arc<UserCell>> {
        let cell = self.get(name)?;
        cell.rules().accepts(pass).then_some(cell)
    }

    /// `requirepass` sets the default user's only password, or `nopass`
    /// when empty (Redis's `ACLUpdateDefaultUserPassword`); applied only
    /// when the setting changed.
    pub fn apply_requirepass(&self, pass: &str) {
        let mut last = self.applied_requirepass.lock();
        if last.as_deref() == Some(pass) {
            return;
        }
        // Serialised with `ACL SETUSER default` and `ACL LOAD`.
        let _users = self.users.write();
        *last = Some(pass.to_string());
        let mut u = (*self.default.rules()).clone();
        let _ = u.apply(b"resetpass", false);
        if pass.is_empty() {
            let _ = u.apply(b"nopass", false);
        } else {
            let _ = u.apply(format!(">{pass}").as_bytes(), false);
        }
        self.default.set(u);
    }

    /// `ACL SETUSER name op...`: every operation is applied to a copy and
    /// the user changes only if all succeed (Redis's `ACLStringSetUser`).
    /// Returns the user's rules before and after.
    pub fn set_user(
        &self,
        name: &[u8],
        ops: &[&[u8]],
    ) -> Result<(Option<Arc<User>>, Arc<UserCell>), String> {
        let merged = merge_selector_args(ops).map_err(|i| unmatched(ops[i]))?;
        let mut users = self.users.write();
        let existing = users.get(name).cloned();
        let before = existing.as_ref().map(|c| c.rules());
        let mut u = match &before {
            Some(r) => (**r).clone(),
            None => User::new(self.pubsub_all()),
        };
        for op in &merged {
            u.apply(op, self.pubsub_all()).map_err(|e| {
                format!(
                    "Error in ACL SETUSER modifier '{}': {e}",
                    String::from_utf8_lossy(op)
                )
            })?;
        }
        let cell = match existing {
            Some(c) => {
                c.set(u);
                c
            }
            None => {
                let c = UserCell::new(name, u);
                users.insert(name.to_vec(), c.clone());
                c
            }
        };
        Ok((before, cell))
    }

    /// Removes users (never `default`); returns those removed, whose
    /// clients the caller disconnects.
    pub fn delete(&self, names: &[Bytes]) -> Vec<Arc<UserCell>> {
        let mut users = self.users.write();
        let removed: Vec<Arc<UserCell>> = names
            .iter()
            .filter_map(|n| users.remove(n.as_ref()))
            .collect();
        removed.iter().for_each(|u| u.remove());
        removed
    }

    /// The whole user table as `user <name> <rules>` lines (`ACL LIST`,
    /// `ACL SAVE`, `CONFIG REWRITE`).
    pub fn list(&self) -> Vec<Vec<u8>> {
        self.users
            .read()
            .values()
            .map(|c| {
                let mut line = b"user ".to_vec();
                line.extend_from_slice(&c.name);
                line.push(b' ');
                line.extend_from_slice(&c.rules().describe());
                line
            })
            .collect()
    }

    /// Loads the users configured with `user` directives at start-up
    /// (Redis's `ACLLoadConfiguredUsers`).
    pub fn load_configured(&self, defs: &[Vec<Vec<u8>>]) -> Result<(), String> {
        for d in defs {
            let Some(name) = d.first() else { continue };
            if has_spaces(name) {
                return Err("Spaces not allowed in ACL usernames".into());
            }
            let ops: Vec<&[u8]> = d[1..].iter().map(|a| a.as_slice()).collect();
            let merged = merge_selector_args(&ops)
                .map_err(|_| "Unmatched parenthesis in acl selector".to_string())?;
            let pubsub_all = self.pubsub_all();
            let mut u = User::new(pubsub_all);
            if name.as_slice() == b"default" {
                // Redis resets the existing default user, keeping nothing.
                let _ = u.apply(b"reset", pubsub_all);
            }
            for op in &merged {
                u.apply(op, pubsub_all).map_err(|e| {
                    format!(
                        "Error loading ACL rule '{}' for the user named '{}': {e}",
                        String::from_utf8_lossy(op),
                        String::from_utf8_lossy(name)
                    )
                })?;
            }
            if u.has(rules::uflag::DISABLED) {
                tracing::info!(user = %String::from_utf8_lossy(name), "The user is disabled (there is no 'on' modifier in the user description). Make sure this is not a configuration error.");
            }
            if name.as_slice() == b"default" {
                self.default.set(u);
            } else {
                self.users
                    .write()
                    .insert(name.clone(), UserCell::new(name, u));
            }
        }
        Ok(())
    }

    /// Replaces every user with the ACL file's (Redis's `ACLLoadFromFile`):
    /// all or nothing. The default user keeps its identity, so its
    /// connections stay; the others' users are returned for disconnection.
    pub fn load_file(&self, path: &str) -> Result<Vec<Arc<UserCell>>, String> {
        let text = std::fs::read(path).map_err(|e| {
            format!(
                "Error loading ACLs, opening file '{path}': {}",
                strerror(&e)
            )
        })?;
        let pubsub_all = self.pubsub_all();
        let mut errors = String::new();
        let mut fresh: BTreeMap<Vec<u8>, User> = BTreeMap::new();
        for (i, raw) in text.split(|&b| b == b'\n').enumerate() {
            let line = raw.trim_ascii();
            let linenum = i + 1;
            if line.is_empty() {
                continue;
            }
            let argv: Vec<&[u8]> = line.split(|&b| b == b' ').collect();
            if argv[0] != b"user" || argv.len() < 2 {
                errors.push_str(&format!(
                    "{path}:{linenum} should start with user keyword followed by the username. "
                ));
                continue;
            }
            let name = argv[1];
            if has_spaces(name) {
                errors.push_str(&format!(
                    "'{path}:{linenum}: username '{}' contains invalid characters. ",
                    String::from_utf8_lossy(name)
                ));
                continue;
            }
            if fresh.contains_key(name) {
                errors.push_str(&format!(
                    "WARNING: Duplicate user '{}' found on line {linenum}. ",
                    String::from_utf8_lossy(name)
                ));
                continue;
            }
            let mut u = User::new(pubsub_all);
            match merge_selector_args(&argv[2..]) {
                Err(_) => errors.push_str(&format!(
                    "{path}:{linenum}: Unmatched parenthesis in selector definition."
                )),
                Ok(ops) => {
                    let mut syntax_error = false;
                    for op in ops {
                        let op = op.trim_ascii();
                        if let Err(e) = u.apply(op, pubsub_all) {
                            if e == RuleError::NoSuchCommand {
                                errors.push_str(&format!(
                                    "{path}:{linenum}: Error in applying operation '{}': {e}. ",
                                    String::from_utf8_lossy(op)
                                ));
                            } else if !syntax_error {
                                errors.push_str(&format!("{path}:{linenum}: {e}. "));
                                syntax_error = true;
                            }
                        }
                    }
                }
            }
            fresh.insert(name.to_vec(), u);
        }
        if !errors.is_empty() {
            errors.push_str("WARNING: ACL errors detected, no change to the previously active ACL rules was performed");
            return Err(errors);
        }
        let mut users = self.users.write();
        let old = std::mem::take(&mut *users);
        let default_rules = fresh
            .remove(&b"default"[..])
            .unwrap_or_else(|| User::default_user(pubsub_all));
        self.default.set(default_rules);
        users.insert(b"default".to_vec(), self.default.clone());
        for (name, u) in fresh {
            let cell = UserCell::new(&name, u);
            users.insert(name, cell);
        }
        let old: Vec<Arc<UserCell>> = old
            .into_iter()
            .filter(|(n, _)| n.as_slice() != b"default")
            .map(|(_, c)| c)
            .collect();
        old.iter().for_each(|u| u.remove());
        Ok(old)
    }

    /// Writes every user to the ACL file through a temporary file and a
    /// rename (Redis's `ACLSaveToFile`).
    pub fn save_file(&self, path: &str) -> std::io::Result<()> {
        let mut text = Vec::new();
        for line in self.list() {
            text.extend_from_slice(&line);
            text.push(b'\n');
        }
        let tmp = format!(
            "{path}.tmp-{}-{}",
            std::process::id(),
            crate::clock::unix_ms()
        );
        let r = std::fs::write(&tmp, &text).and_then(|_| std::fs::rename(&tmp, path));
        if r.is_err() {
            let _ = std::fs::remove_file(&tmp);
        }
        r
    }
}

/// Whether a pub/sub client of a user whose rules went from `before` to
/// `after` lost a channel it may hold (Redis's `ACLKillPubsubClientsIfNeeded`
/// short-cuts): `None` when no client can have, else the new channel list.
pub fn revoked_channels(before: &User, after: &User) -> Option<Vec<Vec<u8>>> {
    if after.selectors.iter().any(|s| s.allchannels) {
        return None;
    }
    let upcoming: Vec<Vec<u8>> = after
        .selectors
        .iter()
        .flat_map(|s| s.channels.iter().cloned())
        .collect();
    let superset = before
        .selectors
        .iter()
        .all(|s| !s.allchannels && s.channels.iter().all(|c| upcoming.contains(c)));
    if superset {
        None
    } else {
        Some(upcoming)
    }
}

impl Acl {
    /// Whether connections that did not authenticate may run only
    /// `no_auth` commands (Redis's `authRequired`).
    #[inline]
    pub fn default_user_needs_auth(&self) -> bool {
        self.default.needs_auth()
    }

    /// Whether the default user takes any password (`nopass`): `AUTH
    /// <password>` is then an error, and protected mode applies.
    pub fn default_user_nopass(&self) -> bool {
        self.default.rules().has(rules::uflag::NOPASS)
    }
}

/// Validates `user <name> <rules>` from the configuration (Redis's
/// `ACLAppendUserForLoading`): rules with syntax errors refuse the file.
/// Only the syntax is checked, so the channel default does not matter.
pub fn validate_config_user(args: &[Vec<u8>]) -> Result<(), String> {
    if args.is_empty() {
        return Err("Bad directive or wrong number of arguments".into());
    }
    let ops: Vec<&[u8]> = args[1..].iter().map(|a| a.as_slice()).collect();
    let merged = merge_selector_args(&ops).map_err(|i| unmatched(ops[i]))?;
    let mut u = User::new(false);
    for op in &merged {
        if let Err(e) = u.apply(op, false) {
            if e != RuleError::NoSuchCommand {
                return Err(e.to_string());
            }
        }
    }
    Ok(())
}

/// `ACL SETUSER`'s error for a selector whose parenthesis never closes.
fn unmatched(op: &[u8]) -> String {
    format!(
        "Unmatched parenthesis in acl selector starting at '{}'.",
        String::from_utf8_lossy(op)
    )
}

/// Checks `cmd` against `rules` (those of `user`) and logs a refusal under
/// `context` for the client behind `handle`: the one step the dispatcher,
/// `EXEC` and `redis.call` share; each words its own error.
pub fn enforce(
    srv: &crate::shared::Shared,
    handle: &crate::client::ClientHandle,
    user: &UserCell,
    rules: &User,
    context: log::Context,
    cmd: &Command,
    argv: &[Bytes],
) -> Result<(), Denied> {
    check(rules, cmd, argv).inspect_err(|d| {
        log_denial(
            srv,
            handle,
            d.reason(),
            context,
            d.object(cmd, argv),
            user.name.to_vec(),
        )
    })
}

/// Records a refusal in the ACL log, with the client's `CLIENT LIST` line.
pub fn log_denial(
    srv: &crate::shared::Shared,
    handle: &crate::client::ClientHandle,
    reason: log::Reason,
    context: log::Context,
    object: Vec<u8>,
    username: Vec<u8>,
) {
    let now = crate::clock::unix_ms();
    let max_len = srv
        .config
        .read()
        .value("acllog-max-len")
        .parse()
        .unwrap_or(128);
    let entry = log::Entry {
        count: 1,
        reason,
        context,
        object,
        username,
        ctime_ms: now,
        client_info: handle.info_line(now),
    };
    srv.acl.log.lock().add(entry, max_len);
}

/// An I/O error as C's `strerror` words it (Rust adds " (os error N)").
fn strerror(e: &std::io::Error) -> String {
    let s = e.to_string();
    match s.find(" (os error") {
        Some(i) => s[..i].to_string(),
        None => s,
    }
}

/// Loads the users of `user` directives or of the ACL file at start-up
/// (Redis's `ACLLoadUsersAtStartup`); an error stops the server.
pub fn load_at_startup(srv: &crate::shared::Shared) -> Result<(), String> {
    let (users, aclfile) = {
        let c = srv.config.read();
        (c.users.clone(), c.value("aclfile"))
    };
    if !aclfile.is_empty() && !users.is_empty() {
        return Err("Configuring Redis with users defined in redis.conf and at the same setting an ACL file path is invalid. This setup is very likely to lead to configuration errors and security holes, please define either an ACL file or declare users directly in your redis.conf, but not both.".into());
    }
    srv.acl
        .load_configured(&users)
        .map_err(|e| format!("{e}. Critical error while loading ACLs. Exiting."))?;
    if !aclfile.is_empty() {
        srv.acl
            .load_file(&aclfile)
            .map_err(|e| format!("Aborting Redis startup because of ACL errors: {e}"))?;
    }
    Ok(())
}
