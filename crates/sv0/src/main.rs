//! `sv0`: prints errors and maps the result of `sv0::run` to the exit code.

use std::process::ExitCode;

fn main() -> ExitCode {
    let mut stdout = std::io::stdout().lock();
    match sv0::run(std::env::args_os(), &mut stdout) {
        Ok(code) => ExitCode::from(code),
        Err(error) => {
            if let Some(clap_error) = error.downcast_ref::<clap::Error>() {
                let _ = clap_error.print();
                return ExitCode::from(sv0::EXIT_ERROR);
            }
            eprintln!("error: {error}");
            for cause in error.chain().skip(1) {
                eprintln!("  caused by: {cause}");
            }
            ExitCode::from(sv0::EXIT_ERROR)
        }
    }
}
