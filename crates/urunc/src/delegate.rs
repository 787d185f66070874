//! Handing a command to the delegate runtime (runc by default), replacing
//! this process so that stdio, PID and exit status are the delegate's.

use crate::entry::ExitCode;
use std::ffi::OsString;
use std::os::unix::process::CommandExt;

pub fn exec(delegate: &str, args: &[OsString]) -> ExitCode {
    let err = std::process::Command::new(delegate).args(args).exec();
    urunc_core::log::error(&format!(
        "delegate runtime {delegate:?}: cannot execute it: {err}"
    ));
    ExitCode::FAILURE
}
