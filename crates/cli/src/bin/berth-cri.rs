//! `berth-cri`: the Container Runtime Interface service `berth cri` execs
//! (the async gRPC stack lives in berth-cri, linked only here).
//! CreateContainer runs in its process with `berth create`'s own code from
//! this crate.
fn main() {
    let create: std::sync::Arc<berth_cri::CreateFn> =
        std::sync::Arc::new(berth_cli::engine::create_in_process);
    std::process::exit(berth_cri::main(Some(create)));
}
