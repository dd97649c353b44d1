//! `berth-service`: the Docker Engine API service `berth system service`
//! execs (the async stack lives in berth-api, linked only here).
fn main() {
    std::process::exit(berth_api::main());
}
