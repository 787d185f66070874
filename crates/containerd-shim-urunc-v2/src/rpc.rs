//! Small pieces of every answer to containerd: errors with a status code,
//! timestamps.

use containerd_shim::protos::{
    protobuf::well_known_types::timestamp::Timestamp,
    ttrpc::{self, Code},
};

/// A TTRPC error with status `code`.
pub fn err(code: Code, msg: impl ToString) -> ttrpc::Error {
    ttrpc::Error::RpcStatus(ttrpc::get_status(code, msg))
}

/// The current time for containerd.
pub fn now() -> Timestamp {
    containerd_shim::util::timestamp().unwrap_or_default()
}
