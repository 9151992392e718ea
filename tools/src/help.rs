//! The end of every command's `--help`: an example and what its exit codes mean. Kept in
//! one table beside the command tree so that a command added without them fails a test.

use clap::error::{ContextKind, ContextValue};
use clap::{Command, Error};

/// Help for one command: its path below `bluejet`, an example, and what exit codes 0 and 1
/// mean for it (2 is always bad usage, 3 an I/O or other error).
struct Extra {
    path: &'static str,
    example: &'static str,
    success: &'static str,
    damage: &'static str,
}

const fn extra(
    path: &'static str,
    example: &'static str,
    success: &'static str,
    damage: &'static str,
) -> Extra {
    Extra {
        path,
        example,
        success,
        damage,
    }
}

/// Exit code 1 of a command that reports no finding of its own: damage met on the way.
const UNUSED: &str = "damage found in the files it read";

const EXTRAS: &[Extra] = &[
    extra(
        "header",
        "bluejet header /var/mail/db",
        "both header copies are sound",
        "a header copy is damaged",
    ),
    extra(
        "checksum",
        "bluejet checksum /var/mail/db --json",
        "every page's checksum matches",
        "a page fails its checksum",
    ),
    extra(
        "integrity",
        "bluejet integrity /var/mail/db",
        "every tree, long value and free page checks out",
        "damage found",
    ),
    extra(
        "repair",
        "bluejet repair /var/mail/db --json",
        "repaired, and nothing was lost",
        "repaired, and something was lost (see the report; always after --force)",
    ),
    extra(
        "space",
        "bluejet space /var/mail/db",
        "the report was printed",
        UNUSED,
    ),
    extra(
        "dump",
        "bluejet dump /var/mail/db messages --limit 10",
        "every entry was printed",
        UNUSED,
    ),
    extra(
        "recover",
        "bluejet recover /var/mail/db",
        "the database was recovered and shut down cleanly",
        "damage in the database or its log",
    ),
    extra(
        "compact",
        "bluejet compact /var/mail/db /var/mail/db.compact",
        "compacted and verified",
        "the copy differs from the original, or damage",
    ),
    extra(
        "log",
        "bluejet log dump /var/mail/db --stats",
        "as the subcommand's",
        "as the subcommand's",
    ),
    extra(
        "log dump",
        "bluejet log dump /var/mail/db --from 3:0 --to 4:0 --table messages",
        "the file or stream checks out, or the range was printed",
        "damage in a generation, the chain or the checkpoint",
    ),
    extra(
        "checkpoint",
        "bluejet checkpoint dump /var/mail/db",
        "as the subcommand's",
        "as the subcommand's",
    ),
    extra(
        "checkpoint dump",
        "bluejet checkpoint dump /var/mail/db/E00.chk --json",
        "a valid copy was found",
        "no valid copy",
    ),
    extra(
        "demo",
        "bluejet demo --messages 500 --keep",
        "every acknowledged message verified",
        "a check failed",
    ),
    extra(
        "repl",
        "bluejet repl status --replica /var/mail/replica",
        "as the subcommand's",
        "as the subcommand's",
    ),
    extra(
        "repl seed",
        "bluejet repl seed --active /var/mail/db --replica /var/mail/replica",
        "the copy was seeded",
        UNUSED,
    ),
    extra(
        "repl run",
        "bluejet repl run --active /var/mail/db --replica /var/mail/replica --duration 60",
        "stopped with the copy healthy",
        "the copy failed",
    ),
    extra(
        "repl status",
        "bluejet repl status --replica /var/mail/replica --json",
        "the copy is not Failed",
        "the copy is Failed",
    ),
    extra(
        "repl suspend",
        "bluejet repl suspend --replica /var/mail/replica --comment 'disk swap'",
        "suspended",
        UNUSED,
    ),
    extra(
        "repl resume",
        "bluejet repl resume --replica /var/mail/replica --comment 'disk swapped'",
        "resumed",
        UNUSED,
    ),
    extra(
        "repl verify",
        "bluejet repl verify --active /var/mail/db --replica /var/mail/replica",
        "the contents are identical",
        "they differ",
    ),
    extra(
        "backup",
        "bluejet backup --replica /var/mail/replica --to /backup/full-1",
        "the backup was taken and verified",
        "damage found in what was copied",
    ),
    extra(
        "backup verify",
        "bluejet backup verify /backup/full-1",
        "every file matches the manifest",
        "a file is damaged or missing",
    ),
    extra(
        "restore",
        "bluejet restore /backup/full-1 /backup/incr-2 --to /var/mail/restored",
        "restored",
        UNUSED,
    ),
    extra(
        "truncate",
        "bluejet truncate --active /var/mail/db --replica /var/mail/replica",
        "truncated (or nothing to delete)",
        UNUSED,
    ),
    extra(
        "node",
        "bluejet node run --config /etc/bluejet/a.json",
        "as the subcommand's",
        "as the subcommand's",
    ),
    extra(
        "node run",
        "bluejet node run --config /etc/bluejet/a.json --duration 3600",
        "stopped cleanly",
        "the node's copy failed",
    ),
    extra(
        "cluster",
        "bluejet cluster status --config /etc/bluejet/a.json",
        "as the subcommand's",
        "as the subcommand's",
    ),
    extra(
        "cluster init",
        "bluejet cluster init --config /etc/bluejet/a.json --comment 'new cluster'",
        "the witness was initialised",
        "the witness holds records already",
    ),
    extra(
        "cluster certs",
        "bluejet cluster certs --dir /etc/bluejet/certs --nodes a,b",
        "every file was written",
        "a file exists already: nothing replaced",
    ),
    extra(
        "cluster status",
        "bluejet cluster status --config /etc/bluejet/a.json --json",
        "the cluster is healthy",
        "it is not",
    ),
    extra(
        "cluster move",
        "bluejet cluster move --config /etc/bluejet/a.json --to b --comment 'patching a'",
        "moved (or allowed, with --validate-only)",
        "refused",
    ),
    extra(
        "cluster mount",
        "bluejet cluster mount --config /etc/bluejet/b.json --node b --force --comment 'a is lost'",
        "mounted",
        "refused or not taken",
    ),
    extra(
        "cluster backup",
        "bluejet cluster backup --config /etc/bluejet/a.json --to /backup/full-1",
        "the backup was taken",
        "refused or failed",
    ),
    extra(
        "diverged",
        "bluejet diverged show /var/mail/node-a",
        "as the subcommand's",
        "as the subcommand's",
    ),
    extra(
        "diverged show",
        "bluejet diverged show /var/mail/node-a/diverged-7 --json",
        "every divergent file was read",
        "a divergent file cannot be read",
    ),
    extra(
        "diverged reapply",
        "bluejet diverged reapply /var/mail/node-a/diverged-7 --to /var/mail/node-b",
        "re-applied",
        "refused or conflicting",
    ),
    extra(
        "completions",
        "bluejet completions bash > /etc/bash_completion.d/bluejet",
        "the script was printed",
        "not used",
    ),
];

/// The text after the options of `extra`'s command.
fn after_help(extra: &Extra) -> String {
    format!(
        "Example:\n  {}\n\nExit codes: 0 {}, 1 {}, 2 bad usage, 3 an I/O or other error.",
        extra.example, extra.success, extra.damage
    )
}

/// Adds the example and exit codes to every command of the tree below `bluejet`.
pub fn complete(mut command: Command) -> Command {
    for extra in EXTRAS {
        let path: Vec<&str> = extra.path.split(' ').collect();
        command = with_subcommand(command, &path, &after_help(extra));
    }
    command
}

fn with_subcommand(command: Command, path: &[&str], text: &str) -> Command {
    let Some((first, rest)) = path.split_first() else {
        return command.after_help(text.to_owned());
    };
    let first = (*first).to_owned();
    command.mut_subcommand(first, |sub| with_subcommand(sub, rest, text))
}

/// The names of `command`'s subcommands a user is not offered: hidden aliases and hidden
/// commands (`mh`, `ml`...), at every level.
fn hidden_names(command: &Command, found: &mut Vec<String>) {
    for sub in command.get_subcommands() {
        if sub.is_hide_set() {
            found.push(sub.get_name().to_owned());
        }
        let visible: Vec<&str> = sub.get_visible_aliases().collect();
        let hidden = sub
            .get_all_aliases()
            .filter(|alias| !visible.contains(alias));
        found.extend(hidden.map(str::to_owned));
        hidden_names(sub, found);
    }
}

/// `error` without the hidden names among its "similar subcommands" (clap offers hidden
/// aliases too), so that a near miss suggests the real commands only.
pub fn without_hidden_suggestions(mut error: Error, command: &Command) -> Error {
    let Some(ContextValue::Strings(suggested)) = error.get(ContextKind::SuggestedSubcommand) else {
        return error;
    };
    let mut hidden = Vec::new();
    hidden_names(command, &mut hidden);
    let kept: Vec<String> = suggested
        .iter()
        .filter(|name| !hidden.contains(name))
        .cloned()
        .collect();
    match kept.is_empty() {
        true => error.remove(ContextKind::SuggestedSubcommand),
        false => error.insert(
            ContextKind::SuggestedSubcommand,
            ContextValue::Strings(kept),
        ),
    };
    error
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every command path of the tree, hidden aliases left out.
    fn paths(command: &Command, prefix: &str, found: &mut Vec<String>) {
        for sub in command.get_subcommands().filter(|sub| !sub.is_hide_set()) {
            let path = format!("{prefix}{}", sub.get_name());
            if sub.get_name() != "help" {
                found.push(path.clone());
                paths(sub, &format!("{path} "), found);
            }
        }
    }

    #[test]
    fn every_command_has_an_example_and_exit_codes() {
        use clap::CommandFactory;
        let mut command = complete(crate::Cli::command());
        command.build();
        let mut found = Vec::new();
        paths(&command, "", &mut found);
        let listed: Vec<&str> = EXTRAS.iter().map(|extra| extra.path).collect();
        for path in &found {
            assert!(listed.contains(&path.as_str()), "{path} has no example");
        }
        assert_eq!(found.len(), listed.len(), "{found:?}");
    }
}
