//! `berth build` run by an unprivileged user (common::rootless, inside a
//! network namespace the test made): RUN, COPY and USER work in the
//! user's rootless store, and the files of the image have the owners the
//! Containerfile gave them as the container sees them.

mod common;
use common::rootless_engine::Rootless;
use common::*;

#[test]
fn rootless_build_runs_copies_and_keeps_container_owners() {
    require_root!();
    let Some(r) = Rootless::new(true) else {
        return;
    };
    r.import();
    let ctx = r.user_files(
        "ctx",
        &[
            ("a.txt", "a\n"),
            ("b.txt", "b\n"),
            (
                "Containerfile",
                "FROM localhost/bb:1\n\
                 RUN echo hi > /f && mkdir /owned && chown 1000:1000 /owned && id -u > /uid\n\
                 COPY --chown=2000:3000 a.txt /a.txt\n\
                 COPY b.txt /b.txt\n\
                 USER nobody\n\
                 RUN id -u > /tmp/nobody-uid && touch /tmp/by-nobody\n\
                 USER root\n",
            ),
        ],
    );
    let out = r.ok(&["build", "-t", "localhost/rb:1", ctx.to_str().unwrap()]);
    assert!(out.contains("STEP 7/7"), "{out}");
    let o = r.berth(&[
        "run",
        "--rm",
        "localhost/rb:1",
        "sh",
        "-c",
        "stat -c %u:%g /owned /a.txt /b.txt /f /tmp/by-nobody; cat /uid /tmp/nobody-uid",
    ]);
    assert_eq!(
        stdout(&o),
        "1000:1000\n2000:3000\n0:0\n0:0\n65534:65534\n0\n65534\n",
        "{}",
        stderr(&o)
    );
    // The store is the user's: nothing of it in root's default store.
    let again = r.ok(&["build", "-t", "localhost/rb:1", ctx.to_str().unwrap()]);
    assert_eq!(again.matches("--> Using cache").count(), 6, "{again}");
}
