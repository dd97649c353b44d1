//! The rootless test user helper itself: the account exists with its own
//! range and environment while the test runs, and nothing is left after.
mod common;

use common::rootless::RootlessUser;

#[test]
fn test_user_has_its_range_and_leaves_nothing() {
    require_root!();
    let Some(u) = RootlessUser::create(true) else {
        return;
    };
    let start = u.subid_start.expect("a subordinate range");
    let subuid = std::fs::read_to_string("/etc/subuid").unwrap();
    assert!(
        subuid.contains(&format!("{}:{start}:65536", u.name)),
        "{subuid}"
    );
    let o = u
        .cmd("sh")
        .args(["-c", "id -u; echo $XDG_RUNTIME_DIR; touch $XDG_RUNTIME_DIR/f; sleep 60 >/dev/null 2>&1 & echo started"])
        .output()
        .unwrap();
    let out = common::ok(&o);
    let mut lines = out.lines();
    assert_eq!(lines.next(), Some(u.uid.to_string().as_str()));
    assert_eq!(lines.next(), Some(u.runtime_dir.to_str().unwrap()));
    assert!(
        !u.processes().is_empty(),
        "the background sleep runs as the user"
    );
    let (name, base) = (u.name.clone(), u.base.clone());
    drop(u);
    let passwd = std::fs::read_to_string("/etc/passwd").unwrap();
    assert!(!passwd.contains(&format!("{name}:")), "account removed");
    let subuid = std::fs::read_to_string("/etc/subuid").unwrap();
    assert!(!subuid.contains(&format!("{name}:")), "range removed");
    assert!(!base.exists(), "dirs removed");
}
