//! The commands `import <resource> FILE [--dry-run] [--map col=field]
//! [--key field]` (with a progress bar) and `import:rollback ID [--force]`.
//! They act as the console (trusted: whoever runs them owns the database).

use std::path::PathBuf;
use std::sync::Arc;

use anyhow::{Context as _, bail};
use clap::{Arg, ArgAction};
use indicatif::{ProgressBar, ProgressStyle};
use platform_admin::capability::Command;
use platform_core::Platform;
use platform_core::context::Context;
use platform_core::platform::PlatformBuilder;

use super::mapping::parse_overrides;
use super::{ImportRequest, Imports, Status};

async fn quiet(builder: PlatformBuilder) -> anyhow::Result<(Platform, Arc<Imports>)> {
    let p = builder.background_tasks(false).build().await?;
    let imports = p
        .get::<Imports>()
        .context("the exchange capability is not added to this platform")?;
    Ok((p, imports))
}

pub(crate) fn commands() -> Vec<Command> {
    vec![
        Command::new(
            clap::Command::new("import")
                .about("Imports a CSV or XLSX file into a resource, as one batch that import:rollback can undo")
                .arg(Arg::new("resource").required(true).help("The resource (plural or singular name)"))
                .arg(Arg::new("file").required(true).value_parser(clap::value_parser!(PathBuf)))
                .arg(Arg::new("dry-run").long("dry-run").action(ArgAction::SetTrue).help("Check every row, write nothing"))
                .arg(
                    Arg::new("map")
                        .long("map")
                        .value_name("COLUMN=FIELD")
                        .action(ArgAction::Append)
                        .help("Feed FIELD from the column headed COLUMN (FIELD empty: ignore the column)"),
                )
                .arg(Arg::new("key").long("key").value_name("FIELD").help("Update the record whose FIELD (unique) matches, else create"))
                .arg(Arg::new("quiet").long("quiet").short('q').action(ArgAction::SetTrue).help("No progress bar")),
            |builder, args| async move {
                let resource = args.get_one::<String>("resource").cloned().unwrap_or_default();
                let file = args.get_one::<PathBuf>("file").cloned().unwrap_or_default();
                let mapping = parse_overrides(
                    args.get_many::<String>("map")
                        .into_iter()
                        .flatten()
                        .map(String::as_str),
                )?;
                let (p, imports) = quiet(builder).await?;
                if !file.is_file() {
                    bail!("{} is not a file", file.display());
                }
                let request = ImportRequest {
                    resource,
                    file_name: file.file_name().map(|n| n.to_string_lossy().into_owned()),
                    content_type: None,
                    mapping,
                    dry_run: args.get_flag("dry-run"),
                    key: args.get_one::<String>("key").cloned(),
                };
                let bar = if args.get_flag("quiet") {
                    ProgressBar::hidden()
                } else {
                    ProgressBar::new_spinner()
                };
                bar.set_style(
                    ProgressStyle::with_template(
                        "{spinner} {elapsed_precise} {pos} rows ({per_sec}) {msg}",
                    )
                    .unwrap_or_else(|_| ProgressStyle::default_spinner()),
                );
                let b = bar.clone();
                let progress = move |c: super::Counts| {
                    b.set_position(c.processed);
                    b.set_message(format!(
                        "{} created, {} updated, {} failed",
                        c.created, c.updated, c.failed
                    ));
                };
                let report = imports
                    .import_file(&p, &Context::console(), &request, &file, &progress)
                    .await;
                bar.finish_and_clear();
                let report = match report {
                    Ok(r) => r,
                    Err(e) => {
                        p.shutdown().await;
                        bail!("{e}");
                    }
                };
                let c = report.counts;
                println!(
                    "Import {}{}: {} rows, {} created, {} updated, {} unchanged, {} failed.",
                    report.batch_id,
                    if report.status == Status::DryRun { " (dry run, nothing written)" } else { "" },
                    c.processed,
                    c.created,
                    c.updated,
                    c.unchanged,
                    c.failed
                );
                if !report.ignored_columns.is_empty() {
                    println!("Ignored columns: {}", report.ignored_columns.join(", "));
                }
                for f in report.failures.iter().take(20) {
                    println!("  row {} {}: {}", f.row, f.column, f.reason);
                }
                if c.failed > 0 {
                    println!("The failed rows: GET /api/imports/{}/failed", report.batch_id);
                }
                p.shutdown().await;
                if let Some(e) = report.error {
                    bail!("the import stopped: {e}");
                }
                Ok(())
            },
        ),
        Command::new(
            clap::Command::new("import:rollback")
                .about("Rolls an import back: removes the records it created, restores the ones it updated")
                .arg(Arg::new("id").required(true).value_parser(clap::value_parser!(i64)))
                .arg(
                    Arg::new("force")
                        .long("force")
                        .action(ArgAction::SetTrue)
                        .help("Also restore records changed since the import (their later changes are lost)"),
                ),
            |builder, args| async move {
                let id = args.get_one::<i64>("id").copied().unwrap_or_default();
                let (p, imports) = quiet(builder).await?;
                let r = imports
                    .rollback(&p, &Context::console(), id, args.get_flag("force"))
                    .await;
                p.shutdown().await;
                let r = r.map_err(|e| anyhow::anyhow!("{e}"))?;
                println!(
                    "Import {id} rolled back: {} removed, {} restored, {} already gone.",
                    r.deleted, r.reverted, r.missing
                );
                Ok(())
            },
        ),
    ]
}
