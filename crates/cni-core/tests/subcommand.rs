#![allow(clippy::unwrap_used)]
//! A plugin's own command line: arguments without `CNI_COMMAND` run the
//! plugin's subcommand; a CNI call ignores arguments; a plugin without
//! subcommands keeps showing its about line.

use std::io::Write;

use cni_core::{run_with_args, CniResult, NetResult, Plugin, Request};

struct Tool {
    has_subcommand: bool,
}

impl Plugin for Tool {
    fn about(&self) -> String {
        "CNI tool plugin v0.0.1".into()
    }
    fn supported_versions(&self) -> &'static [&'static str] {
        &["1.0.0"]
    }
    fn add(&self, req: &Request) -> CniResult<NetResult> {
        Ok(req.conf.prev_result.clone().unwrap_or_default())
    }
    fn del(&self, _req: &Request) -> CniResult<()> {
        Ok(())
    }
    fn check(&self, _req: &Request) -> CniResult<()> {
        Ok(())
    }
    fn subcommand(&self, args: &[String], stdout: &mut dyn Write, stderr: &mut dyn Write) -> Option<i32> {
        if !self.has_subcommand || args[0] != "report" {
            return None;
        }
        if args.len() > 1 {
            writeln!(stderr, "report: unexpected {:?}", args[1]).unwrap();
            return Some(2);
        }
        writeln!(stdout, "report for you").unwrap();
        Some(0)
    }
}

fn run(tool: &Tool, args: &[&str], command: Option<&str>) -> (i32, String, String) {
    let args: Vec<String> = args.iter().map(|a| a.to_string()).collect();
    let command = command.map(str::to_string);
    let env = move |k: &str| if k == "CNI_COMMAND" { command.clone() } else { None };
    let (mut out, mut err) = (Vec::new(), Vec::new());
    let conf = br#"{"cniVersion":"1.0.0","name":"net","type":"tool"}"#;
    let code = run_with_args(tool, &args, &env, &mut &conf[..], &mut out, &mut err);
    (
        code,
        String::from_utf8(out).unwrap(),
        String::from_utf8(err).unwrap(),
    )
}

#[test]
fn arguments_without_cni_command_run_the_subcommand() {
    let t = Tool { has_subcommand: true };
    assert_eq!(
        run(&t, &["report"], None),
        (0, "report for you\n".into(), String::new())
    );
    let (code, out, err) = run(&t, &["report", "--bogus"], None);
    assert_eq!((code, out.as_str()), (2, ""));
    assert!(err.contains("--bogus"), "{err}");
}

#[test]
fn unknown_arguments_and_no_arguments_show_the_about_line() {
    let t = Tool { has_subcommand: true };
    for args in [&[][..], &["other"][..]] {
        assert_eq!(
            run(&t, args, None),
            (0, String::new(), "CNI tool plugin v0.0.1\n".into())
        );
    }
    let plain = Tool {
        has_subcommand: false,
    };
    assert_eq!(
        run(&plain, &["report"], None),
        (0, String::new(), "CNI tool plugin v0.0.1\n".into())
    );
}

#[test]
fn a_cni_call_ignores_arguments() {
    let t = Tool { has_subcommand: true };
    let (code, out, _) = run(&t, &["report"], Some("VERSION"));
    assert_eq!(code, 0);
    assert!(out.contains("supportedVersions"), "{out}");
    assert!(!out.contains("report for you"), "{out}");
}
