//! `berth-service`: the Docker Engine API service `berth system service`
//! execs (the async stack lives in berth-api, linked only here). Creates
//! run in its process with `berth create`'s own code from this crate.
fn main() {
    let create: std::sync::Arc<berth_api::CreateFn> =
        std::sync::Arc::new(berth_cli::engine::create_in_process);
    std::process::exit(berth_api::main(Some(create)));
}
