//! Pub/Sub commands: `SUBSCRIBE UNSUBSCRIBE PSUBSCRIBE PUNSUBSCRIBE PUBLISH
//! SSUBSCRIBE SUNSUBSCRIBE SPUBLISH PUBSUB`.
//!
//! Confirmations are push frames written to `Client::push`, so they survive
//! `CLIENT REPLY OFF` and precede anything else the command replies.

use bytes::Bytes;

use crate::command::{CmdError, CmdResult, Ctx, Handler};
use crate::pubsub::{Kind, SubState};

/// Handlers of this family.
pub const HANDLERS: &[(&str, Handler)] = &[
    ("subscribe", subscribe),
    ("unsubscribe", unsubscribe),
    ("psubscribe", psubscribe),
    ("punsubscribe", punsubscribe),
    ("ssubscribe", ssubscribe),
    ("sunsubscribe", sunsubscribe),
    ("publish", publish),
    ("spublish", spublish),
    ("pubsub|channels", pubsub_channels),
    ("pubsub|shardchannels", pubsub_shardchannels),
    ("pubsub|numsub", pubsub_numsub),
    ("pubsub|shardnumsub", pubsub_shardnumsub),
    ("pubsub|numpat", pubsub_numpat),
    ("pubsub|help", pubsub_help),
];

/// The client's subscription state, created on first use.
fn state<'c>(ctx: &'c mut Ctx<'_>) -> &'c mut SubState {
    let h = ctx.client.handle.clone();
    ctx.client.sub.get_or_insert_with(|| SubState::new(h))
}

/// One `[word, channel-or-nil, count]` confirmation.
fn confirm(ctx: &mut Ctx<'_>, word: &[u8], channel: Option<&[u8]>, count: usize) {
    let p = ctx.client.push.get_mut();
    p.resp3 = ctx.out.resp3;
    p.push(3);
    p.bulk(word);
    match channel {
        Some(c) => p.bulk(c),
        None => p.null(),
    }
    p.integer(count as i64);
}

/// Updates `CLIENT_PUBSUB` and the `CLIENT LIST` counts after a change.
fn settle(ctx: &mut Ctx<'_>) {
    if let Some(st) = ctx.client.sub.as_ref() {
        st.publish_counts();
        ctx.client.pubsub = st.total() > 0;
    }
}

fn sub_channels(ctx: &mut Ctx<'_>, args: &[Bytes], kind: Kind) -> CmdResult {
    let word: &[u8] = match kind {
        Kind::Global => b"subscribe",
        Kind::Shard => b"ssubscribe",
    };
    for c in &args[1..] {
        let ps = ctx.srv.pubsub.clone();
        let st = state(ctx);
        ps.subscribe(st, c, kind);
        let n = match kind {
            Kind::Global => st.count(),
            Kind::Shard => st.shard.len(),
        };
        confirm(ctx, word, Some(c), n);
    }
    // After `settle` has made the client a pub/sub client, so that a
    // revoking scan either sees it or this check sees the new rules.
    settle(ctx);
    revoked_meanwhile(ctx, &args[1..], false);
    Ok(())
}

/// An `ACL SETUSER` that revoked these channels after the dispatcher
/// checked them, but before they were registered, may have scanned the
/// subscribers too early: checked again now, the client closes as the
/// scan would have closed it.
fn revoked_meanwhile(ctx: &mut Ctx<'_>, names: &[Bytes], is_pattern: bool) {
    let Some(user) = ctx.client.user.as_ref().filter(|u| !u.open()) else {
        return;
    };
    let rules = user.rules();
    if names
        .iter()
        .any(|n| !crate::acl::channel_permitted(&rules, n, is_pattern))
    {
        ctx.client.close_after_reply = true;
    }
}

fn unsub_channels(ctx: &mut Ctx<'_>, args: &[Bytes], kind: Kind) -> CmdResult {
    let word: &[u8] = match kind {
        Kind::Global => b"unsubscribe",
        Kind::Shard => b"sunsubscribe",
    };
    let ps = ctx.srv.pubsub.clone();
    let count = |st: &SubState| match kind {
        Kind::Global => st.count(),
        Kind::Shard => st.shard.len(),
    };
    let targets: Vec<Bytes> = if args.len() > 1 {
        args[1..].to_vec()
    } else {
        let st = state(ctx);
        let set = match kind {
            Kind::Global => &st.channels,
            Kind::Shard => &st.shard,
        };
        set.iter().cloned().collect()
    };
    if targets.is_empty() {
        let n = count(state(ctx));
        confirm(ctx, word, None, n);
    }
    for c in &targets {
        let st = state(ctx);
        ps.unsubscribe(st, c, kind);
        let n = count(st);
        confirm(ctx, word, Some(c), n);
    }
    settle(ctx);
    Ok(())
}

fn subscribe(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CmdResult {
    sub_channels(ctx, args, Kind::Global)
}

fn ssubscribe(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CmdResult {
    sub_channels(ctx, args, Kind::Shard)
}

fn unsubscribe(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CmdResult {
    unsub_channels(ctx, args, Kind::Global)
}

fn sunsubscribe(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CmdResult {
    unsub_channels(ctx, args, Kind::Shard)
}

fn psubscribe(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CmdResult {
    let ps = ctx.srv.pubsub.clone();
    for p in &args[1..] {
        let st = state(ctx);
        ps.psubscribe(st, p);
        let n = st.count();
        confirm(ctx, b"psubscribe", Some(p), n);
    }
    settle(ctx);
    revoked_meanwhile(ctx, &args[1..], true);
    Ok(())
}

fn punsubscribe(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CmdResult {
    let ps = ctx.srv.pubsub.clone();
    let targets: Vec<Bytes> = if args.len() > 1 {
        args[1..].to_vec()
    } else {
        state(ctx).patterns.clone()
    };
    if targets.is_empty() {
        let n = state(ctx).count();
        confirm(ctx, b"punsubscribe", None, n);
    }
    for p in &targets {
        let st = state(ctx);
        ps.punsubscribe(st, p);
        let n = st.count();
        confirm(ctx, b"punsubscribe", Some(p), n);
    }
    settle(ctx);
    Ok(())
}

fn publish_kind(ctx: &mut Ctx<'_>, args: &[Bytes], kind: Kind) -> CmdResult {
    let id = ctx.client.id();
    let push = ctx.client.push.get_mut();
    push.resp3 = ctx.out.resp3;
    let n = ctx
        .srv
        .pubsub
        .publish(&args[1], &args[2], kind, Some((id, push)));
    // The subscribers' output grew: Redis evicts clients before it sleeps
    // again, not at some later command.
    crate::client_mem::evict_clients(ctx.srv);
    // Redis propagates PUBLISH to replicas so their subscribers hear it too.
    ctx.propagate_argv(args);
    ctx.out.integer(n);
    Ok(())
}

fn publish(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CmdResult {
    publish_kind(ctx, args, Kind::Global)
}

fn spublish(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CmdResult {
    publish_kind(ctx, args, Kind::Shard)
}

fn list_channels(ctx: &mut Ctx<'_>, args: &[Bytes], kind: Kind) -> CmdResult {
    if args.len() > 3 {
        return Err(CmdError::subcommand_syntax(args));
    }
    let v = ctx.srv.pubsub.channels(kind, args.get(2).map(|p| &p[..]));
    ctx.out.array(v.len());
    for c in v {
        ctx.out.bulk(&c);
    }
    Ok(())
}

fn pubsub_channels(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CmdResult {
    list_channels(ctx, args, Kind::Global)
}

fn pubsub_shardchannels(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CmdResult {
    list_channels(ctx, args, Kind::Shard)
}

fn numsub(ctx: &mut Ctx<'_>, args: &[Bytes], kind: Kind) -> CmdResult {
    ctx.out.array((args.len() - 2) * 2);
    for c in &args[2..] {
        ctx.out.bulk(c);
        let n = ctx.srv.pubsub.numsub(kind, c);
        ctx.out.integer(n as i64);
    }
    Ok(())
}

fn pubsub_numsub(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CmdResult {
    numsub(ctx, args, Kind::Global)
}

fn pubsub_shardnumsub(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CmdResult {
    numsub(ctx, args, Kind::Shard)
}

fn pubsub_numpat(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CmdResult {
    if args.len() != 2 {
        return Err(CmdError::subcommand_syntax(args));
    }
    let n = ctx.srv.pubsub.numpat();
    ctx.out.integer(n as i64);
    Ok(())
}

fn pubsub_help(ctx: &mut Ctx<'_>, _args: &[Bytes]) -> CmdResult {
    const HELP: &[&str] = &[
        "CHANNELS [<pattern>]",
        "    Return the currently active channels matching a <pattern> (default: '*').",
        "NUMPAT",
        "    Return number of subscriptions to patterns.",
        "NUMSUB [<channel> ...]",
        "    Return the number of subscribers for the specified channels, excluding",
        "    pattern subscriptions(default: no channels).",
        "SHARDCHANNELS [<pattern>]",
        "    Return the currently active shard level channels matching a <pattern> (default: '*').",
        "SHARDNUMSUB [<shardchannel> ...]",
        "    Return the number of subscribers for the specified shard level channel(s)",
    ];
    crate::commands::connection::write_help(ctx, "PUBSUB", HELP);
    Ok(())
}
