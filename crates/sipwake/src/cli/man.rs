//! `sipwake man`: the manual page, rendered as roff from the command-line
//! definition (clap_mangen), plus a FILES section for the packaged layout.
//!
//! Owns only the rendering; `packaging/man/sipwake.1` is its committed
//! output (a test fails when the two differ). Must not touch the
//! configuration or the store.

use std::io::Write;
use std::process::ExitCode;

/// The FILES section: where the Debian package and the container image
/// put the configuration and the data.
const FILES: &str = r#".SH FILES
.TP
\fI/etc/sipwake/sipwake.toml\fR
Configuration of the packaged service (readable by root and the sipwake group only).
Check it with \fBsipwake \-\-check\-config\fR \fIFILE\fR.
.TP
\fI/var/lib/sipwake/sipwake.db\fR
The SQLite store (bindings and subscriber password hashes); sipwake creates
its data directory with mode 0700 and its database files with mode 0600.
.TP
\fI/lib/systemd/system/sipwake.service\fR
The systemd unit of the Debian package.
"#;

/// Renders the page of `cmd` into `out`.
pub fn render(cmd: clap::Command, out: &mut dyn Write) -> std::io::Result<()> {
    let cmd_for_commands = cmd.clone();
    let man = clap_mangen::Man::new(cmd);
    man.render_title(out)?;
    man.render_name_section(out)?;
    man.render_synopsis_section(out)?;
    man.render_description_section(out)?;
    man.render_options_section(out)?;
    out.write_all(commands_section(&cmd_for_commands).as_bytes())?;
    out.write_all(FILES.as_bytes())?;
    if cmd_for_commands.get_version().is_some() {
        // clap_mangen unwraps the version.
        man.render_version_section(out)?;
    }
    Ok(())
}

/// The COMMANDS section: every visible subcommand and its own subcommands
/// on this one page (clap_mangen would point to sipwake-user(1) and the
/// like, which are not installed).
fn commands_section(cmd: &clap::Command) -> String {
    let mut out = String::from(".SH COMMANDS\n");
    for sub in visible(cmd) {
        let name = format!("{} {}", cmd.get_name(), sub.get_name());
        out.push_str(&format!(".SS \"{}\"\n{}\n", escape(&name), escape(&about(sub))));
        for leaf in visible(sub) {
            out.push_str(&format!(
                ".TP\n\\fB{} {}\\fR\n{}\n",
                escape(&name),
                escape(leaf.get_name()),
                escape(&about(leaf))
            ));
        }
        out.push_str(&format!(".PP\nOptions: \\fB{} \\-\\-help\\fR.\n", escape(&name)));
    }
    out
}

fn visible(cmd: &clap::Command) -> impl Iterator<Item = &clap::Command> {
    cmd.get_subcommands().filter(|c| !c.is_hide_set() && c.get_name() != "help")
}

fn about(cmd: &clap::Command) -> String {
    cmd.get_about().map(|a| a.to_string()).unwrap_or_default()
}

/// Text safe in roff: backslashes and hyphens escaped, no line starting a request.
fn escape(text: &str) -> String {
    let s = text.replace('\\', "\\e").replace('-', "\\-");
    if s.starts_with('.') || s.starts_with('\'') { format!("\\&{s}") } else { s }
}

/// Prints the page of `cmd` on standard output.
pub fn print(cmd: clap::Command) -> ExitCode {
    let mut buf = Vec::new();
    let written = render(cmd, &mut buf).and_then(|()| std::io::stdout().write_all(&buf));
    match written {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: cannot write the manual page: {e}");
            ExitCode::FAILURE
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escape_keeps_roff_requests_out_of_text() {
        assert_eq!(escape("--help"), "\\-\\-help");
        assert_eq!(escape(".x"), "\\&.x");
        assert_eq!(escape("a\\b"), "a\\eb");
    }

    #[test]
    fn commands_are_on_the_page_with_their_subcommands() {
        let cmd = clap::Command::new("sipwake")
            .subcommand(
                clap::Command::new("user").about("Users").subcommand(clap::Command::new("add").about("Add one")),
            )
            .subcommand(clap::Command::new("man").hide(true));
        let mut buf = Vec::new();
        render(cmd, &mut buf).unwrap();
        let page = String::from_utf8(buf).unwrap();
        assert!(page.contains(".SS \"sipwake user\"\nUsers\n.TP\n\\fBsipwake user add\\fR\nAdd one\n"), "{page}");
        assert!(!page.contains("sipwake man") && !page.contains("sipwake\\-user(1)"), "{page}");
        assert!(page.contains(".SH FILES"), "{page}");
    }
}
