//! What a new user sees when the server starts, and when it stops: the
//! errors of a start that cannot happen, the summary of what is live, a
//! number whose flow was refused, the drain after calls that are over.

mod common;

use std::process::Command;

use common::Server;

#[test]
fn a_second_server_on_a_taken_address_names_the_transport_the_address_and_what_to_do() {
    let server = Server::start("");
    let udp = server.addr("udp");
    let dir = tempfile::tempdir().expect("tmp");
    let out = Command::new(env!("CARGO_BIN_EXE_dhwani"))
        .arg("serve")
        .arg("--config")
        .arg(server.config_path())
        .arg("--data-dir")
        .arg(dir.path())
        .arg("--listen")
        .arg(format!("udp:{udp}"))
        .output()
        .expect("second server");
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains(&format!("udp {udp}")), "{err}");
    assert!(err.contains("in use"), "{err}");
    assert!(err.contains("--listen"), "what to do: {err}");
}
