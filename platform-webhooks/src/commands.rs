//! The commands: `webhooks:list`, `webhooks:calls`, `webhooks:replay ID`,
//! `webhooks:rerun ID`, `webhooks:prune`.

use std::sync::Arc;

use anyhow::Context as _;
use clap::Arg;
use platform_admin::capability::Command;
use platform_core::Platform;
use platform_core::platform::PlatformBuilder;

use crate::Webhooks;

async fn quiet(builder: PlatformBuilder) -> anyhow::Result<(Platform, Arc<Webhooks>)> {
    let p = builder.background_tasks(false).build().await?;
    let w = p
        .get::<Webhooks>()
        .context("the webhooks capability is not added to this platform")?;
    Ok((p, w))
}

fn id_arg(help: &'static str) -> Arg {
    Arg::new("id").required(true).help(help)
}

pub(crate) fn commands() -> Vec<Command> {
    vec![
        Command::new(
            clap::Command::new("webhooks:list").about("Lists the webhook subscriptions"),
            |builder, _args| async move {
                let (p, w) = quiet(builder).await?;
                let subs = w.subscriptions().await;
                p.shutdown().await;
                let subs = subs?;
                if subs.is_empty() {
                    println!("No webhook subscriptions.");
                }
                for s in subs {
                    println!(
                        "{:>5}  {:<8}  failures={}  {}  [{}]  secret {}",
                        s.id,
                        if s.active { "active" } else { "inactive" },
                        s.failures,
                        s.url,
                        s.events.join(", "),
                        s.secret_hint
                    );
                }
                Ok(())
            },
        ),
        Command::new(
            clap::Command::new("webhooks:calls")
                .about("Lists the latest outgoing webhook calls")
                .arg(
                    Arg::new("subscription")
                        .long("subscription")
                        .value_parser(clap::value_parser!(i64))
                        .help("Only this subscription's calls"),
                ),
            |builder, args| async move {
                let sub = args.get_one::<i64>("subscription").copied();
                let (p, w) = quiet(builder).await?;
                let calls = w.calls(sub, 100).await;
                p.shutdown().await;
                for c in calls? {
                    println!(
                        "{}  sub={}  {:<24}  {:<9}  attempts={}  last={}",
                        c.id,
                        c.subscription_id,
                        c.event_type,
                        c.status,
                        c.attempts,
                        c.last_status
                            .map_or_else(|| "-".to_owned(), |s| s.to_string())
                    );
                }
                Ok(())
            },
        ),
        Command::new(
            clap::Command::new("webhooks:replay")
                .about("Queues an outgoing webhook call again (a finally failed one too)")
                .arg(id_arg("The call's id (see webhooks:calls)")),
            |builder, args| async move {
                let id = args.get_one::<String>("id").cloned().unwrap_or_default();
                let (p, w) = quiet(builder).await?;
                let r = w.replay(&id).await;
                p.shutdown().await;
                r?;
                println!("Call {id} queued again.");
                Ok(())
            },
        ),
        Command::new(
            clap::Command::new("webhooks:rerun")
                .about("Processes a stored incoming webhook call again")
                .arg(id_arg("The incoming call's id")),
            |builder, args| async move {
                let id = args.get_one::<String>("id").cloned().unwrap_or_default();
                let (p, w) = quiet(builder).await?;
                let r = w.rerun(&id).await;
                p.shutdown().await;
                r?;
                println!("Incoming call {id} queued again.");
                Ok(())
            },
        ),
        Command::new(
            clap::Command::new("webhooks:prune")
                .about("Deletes webhook calls and incoming calls older than the retention"),
            |builder, _args| async move {
                let (p, w) = quiet(builder).await?;
                let r = w.prune().await;
                p.shutdown().await;
                println!("{} rows deleted.", r?);
                Ok(())
            },
        ),
    ]
}
