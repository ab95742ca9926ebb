//! The Dockerfile parser, and what the build does next with its output:
//! RUN scripts and heredoc lines, and variable expansion of FROM images.
#![no_main]

use brig::build::parse::{self, Kind};
use brig::build::vars;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(df) = parse::parse(text, "Dockerfile") else {
        return;
    };
    assert!(df.escape == '\\' || df.escape == '`', "escape {:?}", df.escape);
    let lookup = |name: &str| (name == "A").then(|| "value".to_string());
    for stage in &df.stages {
        if let Kind::From { image, .. } = &stage.from.kind {
            let _ = vars::expand(image, &lookup, df.escape);
        }
        for ins in &stage.instructions {
            assert!(ins.line >= 1);
            if let Kind::Run { cmd, heredocs, .. } = &ins.kind {
                let _ = parse::run_script(cmd, heredocs);
                if let parse::Cmd::Shell(line) = cmd {
                    let _ = parse::run_shell_line(line, heredocs);
                }
            }
        }
    }
});
