//! What ADD does beyond COPY (Dockerfile reference, "ADD"): a local tar
//! archive (plain, gzip, bzip2, xz or zstd) is extracted into the
//! destination, and an `http(s)://` source is downloaded (not extracted),
//! checked against `--checksum=sha256:...` when given.

use std::fs::{self, File};
use std::io::{self, BufReader, Read, Write};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use sha2::{Digest as _, Sha256};

/// A reader of `p` with its compression removed, when `p` is a tar
/// archive; `None` when it is not one.
fn tar_reader(p: &Path) -> Result<Option<Box<dyn Read>>, String> {
    let mut head = [0u8; 6];
    let n = File::open(p)
        .and_then(|mut f| f.read(&mut head))
        .map_err(|e| format!("{}: {e}", p.display()))?;
    let h = &head[..n];
    let f = BufReader::new(File::open(p).map_err(|e| format!("{}: {e}", p.display()))?);
    let r: Box<dyn Read> = if h.starts_with(&[0x1f, 0x8b]) {
        Box::new(flate2::read::MultiGzDecoder::new(f))
    } else if h.starts_with(b"BZh") {
        Box::new(bzip2::read::MultiBzDecoder::new(f))
    } else if h.starts_with(&[0xfd, b'7', b'z', b'X', b'Z', 0]) {
        // lzma-rs decodes whole streams: into memory.
        let mut out = Vec::new();
        lzma_rs::xz_decompress(&mut BufReader::new(f), &mut out)
            .map_err(|e| format!("{}: xz: {e}", p.display()))?;
        Box::new(io::Cursor::new(out))
    } else if h.starts_with(&[0x28, 0xb5, 0x2f, 0xfd]) {
        Box::new(
            zstd::stream::read::Decoder::new(f)
                .map_err(|e| format!("{}: zstd: {e}", p.display()))?,
        )
    } else {
        Box::new(f)
    };
    // A tar has "ustar" at 257 of its first header.
    let mut r = r;
    let mut first = vec![0u8; 512];
    let mut got = 0;
    while got < 512 {
        match r.read(&mut first[got..]) {
            Ok(0) => break,
            Ok(k) => got += k,
            Err(e) if n > 0 && !h.starts_with(b"ustar") => {
                // Compressed but not decodable: not an archive ADD knows.
                let _ = e;
                return Ok(None);
            }
            Err(e) => return Err(format!("{}: {e}", p.display())),
        }
    }
    if got < 512 || &first[257..262] != b"ustar" {
        return Ok(None);
    }
    Ok(Some(Box::new(io::Cursor::new(first).chain(r))))
}

/// Extracts `src` into `dir/<its name>/` when it is a tar archive (owners,
/// modes, times and links as in the archive); `None` when it is not one.
pub(crate) fn extract(src: &Path, dir: &Path) -> Result<Option<PathBuf>, String> {
    let Some(r) = tar_reader(src)? else {
        return Ok(None);
    };
    let out = dir.join(src.file_name().unwrap_or_default());
    fs::create_dir_all(&out).map_err(|e| format!("{}: {e}", out.display()))?;
    let mut a = tar::Archive::new(r);
    a.set_preserve_permissions(true);
    a.set_preserve_ownerships(true);
    a.set_preserve_mtime(true);
    a.set_overwrite(true);
    a.unpack(&out)
        .map_err(|e| format!("extract {}: {e}", src.display()))?;
    Ok(Some(out))
}

/// Downloads `url` into `dir/<last path segment>` (mode 0600, as Docker);
/// verifies `checksum` (`sha256:HEX`) when given.
pub(crate) fn fetch(url: &str, dir: &Path, checksum: Option<&str>) -> Result<PathBuf, String> {
    let want = match checksum {
        Some(c) => Some(
            c.strip_prefix("sha256:")
                .filter(|h| h.len() == 64 && h.bytes().all(|b| b.is_ascii_hexdigit()))
                .ok_or_else(|| format!("--checksum={c}: expected sha256:<64 hex digits>"))?
                .to_ascii_lowercase(),
        ),
        None => None,
    };
    let path = url.split(['?', '#']).next().unwrap_or(url);
    let name = path
        .rsplit('/')
        .next()
        .filter(|n| !n.is_empty() && !path.ends_with("//") && path.matches('/').count() > 2)
        .unwrap_or("download");
    let resp = ureq::get(url)
        .call()
        .map_err(|e| format!("download {url}: {e}"))?;
    let p = dir.join(name);
    let mut f = File::create(&p).map_err(|e| format!("{}: {e}", p.display()))?;
    let mut h = Sha256::new();
    let mut r = resp.into_reader();
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let n = r
            .read(&mut buf)
            .map_err(|e| format!("download {url}: {e}"))?;
        if n == 0 {
            break;
        }
        h.update(&buf[..n]);
        f.write_all(&buf[..n])
            .map_err(|e| format!("{}: {e}", p.display()))?;
    }
    let got = hex::encode(h.finalize());
    if let Some(w) = want {
        if got != w {
            return Err(format!(
                "{url}: checksum mismatch: got sha256:{got}, --checksum wants sha256:{w}"
            ));
        }
    }
    fs::set_permissions(&p, fs::Permissions::from_mode(0o600))
        .map_err(|e| format!("{}: {e}", p.display()))?;
    Ok(p)
}
