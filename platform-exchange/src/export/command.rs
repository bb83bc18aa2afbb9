//! `export <resource> [--format csv|xlsx] [--output FILE] [--search ..]
//! [--sort ..] [--filter field=value ..] [--columns a,b] [--trashed ..]`.

use anyhow::{Context as _, bail};
use clap::{Arg, ArgAction};
use platform_admin::capability::Command;
use platform_core::context::Context;

use super::{Export, ExportConfig, Format, parse_params};

pub(super) fn command() -> Command {
    Command::new(
        clap::Command::new("export")
            .about("Exports a resource's records as CSV or XLSX (to a file or standard output)")
            .arg(
                Arg::new("resource")
                    .required(true)
                    .help("The resource's plural name (invoices)"),
            )
            .arg(
                Arg::new("format")
                    .long("format")
                    .value_parser(["csv", "xlsx"])
                    .help("csv (default) or xlsx; default from the output file's extension"),
            )
            .arg(
                Arg::new("output")
                    .long("output")
                    .short('o')
                    .value_name("FILE")
                    .help("Write here (default: standard output, CSV only)"),
            )
            .arg(Arg::new("search").long("search").help("Free-text search"))
            .arg(
                Arg::new("sort")
                    .long("sort")
                    .help("Sort field, `-field` for descending"),
            )
            .arg(
                Arg::new("filter")
                    .long("filter")
                    .value_name("FIELD[OP]=VALUE")
                    .action(ArgAction::Append)
                    .help("A filter as in the API: status=paid, total[gte]=100, notes[null]=true"),
            )
            .arg(
                Arg::new("columns")
                    .long("columns")
                    .value_name("A,B")
                    .help("Only these fields, in this order"),
            )
            .arg(
                Arg::new("trashed")
                    .long("trashed")
                    .value_parser(["with", "only", "without"])
                    .help("Soft-deleted records"),
            ),
        |builder, args| async move {
            let resource: String = args
                .get_one::<String>("resource")
                .cloned()
                .unwrap_or_default();
            let output = args.get_one::<String>("output").cloned();
            let format = match args.get_one::<String>("format") {
                Some(f) => Format::parse(f).context("format")?,
                None if output
                    .as_deref()
                    .is_some_and(|o| o.to_ascii_lowercase().ends_with(".xlsx")) =>
                {
                    Format::Xlsx
                }
                None => Format::Csv,
            };
            let mut params: Vec<(String, String)> = Vec::new();
            for key in ["search", "sort", "columns", "trashed"] {
                if let Some(v) = args.get_one::<String>(key) {
                    params.push((key.to_owned(), v.clone()));
                }
            }
            for f in args.get_many::<String>("filter").into_iter().flatten() {
                let Some((k, v)) = f.split_once('=') else {
                    bail!("--filter {f:?}: write FIELD=VALUE or FIELD[OP]=VALUE");
                };
                params.push((
                    format!("filter[{}]", k.replace('[', "][")).replace("]]", "]"),
                    v.to_owned(),
                ));
            }
            let platform = builder.background_tasks(false).build().await?;
            let result = async {
                let records = platform
                    .records(&resource, &Context::console())
                    .with_context(|| format!("no resource `{resource}`"))?;
                let (query, _, columns) =
                    parse_params(params.iter().map(|(k, v)| (k.as_str(), v.as_str())))
                        .map_err(|e| anyhow::anyhow!(describe(&e)))?;
                let config = platform
                    .get::<ExportConfig>()
                    .map(|c| (*c).clone())
                    .unwrap_or_default();
                let export =
                    Export::new(records, query, columns.as_deref())?.batch_size(config.batch);
                let rows = match (&output, format) {
                    (Some(path), f) => export.write_file(f, std::path::Path::new(path)).await?,
                    (None, Format::Csv) => {
                        use futures::StreamExt;
                        use std::io::Write;
                        let stream = export.csv_stream().await?;
                        futures::pin_mut!(stream);
                        while let Some(chunk) = stream.next().await {
                            let chunk = chunk?;
                            let mut out = std::io::stdout().lock();
                            out.write_all(&chunk)?;
                            out.flush()?;
                        }
                        0
                    }
                    (None, Format::Xlsx) => bail!("XLSX needs --output FILE"),
                };
                if let Some(path) = &output {
                    eprintln!("Exported {rows} rows to {path}.");
                }
                anyhow::Ok(())
            }
            .await;
            platform.shutdown().await;
            result
        },
    )
}

/// Validation messages on one line each.
fn describe(e: &platform_core::error::FieldErrors) -> String {
    e.iter()
        .map(|f| format!("{}: {}", f.field, f.message))
        .collect::<Vec<_>>()
        .join("\n")
}
