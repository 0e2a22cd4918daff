//! The `ddbsnap` binary: the command line of [`ddbsnap::app`].

fn main() -> std::process::ExitCode {
    std::process::ExitCode::from(ddbsnap::app::main(std::env::args_os()))
}
