//! Images in use by containers: `rmi` refuses them (naming the containers),
//! `image prune -a` keeps them, and both work once the containers are gone.

mod common;
use common::*;

#[test]
fn images_used_by_containers_are_kept() {
    require_root!();
    let env = EngineEnv::new();
    let img = env.busybox_image();
    env.ok(&["create", "--name", "keeper", &img, "true"]);
    let o = env.berth(&["rmi", &img]);
    assert!(!o.status.success(), "rmi of an image in use must fail");
    assert!(
        stderr(&o).contains("keeper"),
        "the error names the container: {}",
        stderr(&o)
    );
    env.ok(&["image", "prune", "-a"]);
    let images = env.ok(&["images", "--format", "json"]);
    assert!(
        images.contains("busybox") || images.contains(img.as_str()),
        "prune kept the image: {images}"
    );
    // The container still runs from it.
    env.ok(&["start", "-a", "keeper"]);
    env.ok(&["rm", "keeper"]);
    env.ok(&["rmi", &img]);
    let images = env.ok(&["images", "-q"]);
    assert!(
        images.trim().is_empty(),
        "image removed once unused: {images}"
    );
}
