//! `canhgac generate`: the man pages and shell completions that the Debian
//! package installs, made from the argument definitions themselves so that
//! they can never describe options the binary does not have.

use std::path::Path;
use std::process::ExitCode;

use super::fail;

/// `canhgac(1)`, then `canhgac-SUB(1)` for every visible subcommand and
/// `canhgac-SUB-SUBSUB(1)` below it, as git names its pages.
pub(crate) fn man_pages(cli: clap::Command, dir: &Path) -> Result<ExitCode, ExitCode> {
    std::fs::create_dir_all(dir).map_err(fail)?;
    let mut cli = cli;
    // The pages name each other "canhgac-run" only once built.
    cli.build();
    write_pages(&cli, "canhgac", dir)?;
    Ok(ExitCode::SUCCESS)
}

fn write_pages(cmd: &clap::Command, name: &str, dir: &Path) -> Result<(), ExitCode> {
    let page = cmd
        .clone()
        .name(name.to_owned())
        .display_name(name.to_owned());
    let mut roff = Vec::new();
    clap_mangen::Man::new(page)
        .render(&mut roff)
        .map_err(fail)?;
    std::fs::write(dir.join(format!("{name}.1")), roff).map_err(fail)?;
    for sub in cmd
        .get_subcommands()
        .filter(|s| !s.is_hide_set() && s.get_name() != "help")
    {
        write_pages(sub, &format!("{name}-{}", sub.get_name()), dir)?;
    }
    Ok(())
}

pub(crate) fn completions(
    cli: clap::Command,
    shell: clap_complete::Shell,
) -> Result<ExitCode, ExitCode> {
    use std::io::Write;
    let mut cli = cli;
    // clap_complete panics on a failed write: write it ourselves.
    let mut script = Vec::new();
    clap_complete::generate(shell, &mut cli, "canhgac", &mut script);
    std::io::stdout().write_all(&script).map_err(fail)?;
    Ok(ExitCode::SUCCESS)
}
