//! CRI ImageService on berth's image store. Pulls go through `berth pull`,
//! which reads containers-registries.conf(5) (mirrors, blocked
//! registries, search registries).

use std::sync::Arc;

use berth_image::image::{resolve, ResolvedImage};
use berth_image::store::ImageRecord;
use berth_image::Store;
use k8s_cri::v1::image_service_server::ImageService;
use k8s_cri::v1::*;
use tonic::{Request, Response, Status};

use crate::Ctx;

pub struct Images(pub Arc<Ctx>);

type R<T> = Result<Response<T>, Status>;

fn open(root: &std::path::Path) -> Result<Store, Status> {
    Store::open(root).map_err(|e| Status::internal(format!("open the image store: {e}")))
}

fn to_image(img: &ResolvedImage) -> Image {
    let rec = &img.record;
    let size = img.manifest.config.size + img.manifest.layers.iter().map(|l| l.size).sum::<u64>();
    let (mut repo_tags, mut repo_digests) = (Vec::new(), Vec::new());
    for n in &rec.names {
        repo_tags.push(n.clone());
        if let Some((repo, _)) = n.rsplit_once(':').filter(|(r, _)| !r.ends_with('/')) {
            let d = format!("{repo}@{}", rec.manifest.digest);
            if !repo_digests.contains(&d) {
                repo_digests.push(d);
            }
        }
    }
    let user = img
        .config
        .config
        .as_ref()
        .and_then(|c| c.user.clone())
        .unwrap_or_default();
    let user = user.split(':').next().unwrap_or_default().to_string();
    let (uid, username) = match user.parse::<i64>() {
        Ok(n) => (Some(Int64Value { value: n }), String::new()),
        Err(_) if user.is_empty() => (Some(Int64Value { value: 0 }), String::new()),
        Err(_) => (None, user),
    };
    Image {
        id: rec.id.to_string(),
        repo_tags,
        repo_digests,
        size,
        uid,
        username,
        ..Default::default()
    }
}

/// The stored image `name` (name, ID or ID prefix) stands for.
fn lookup(store: &Store, name: &str) -> Result<Option<ResolvedImage>, Status> {
    let rec: ImageRecord = match store.lookup(name) {
        Ok(r) => r,
        Err(berth_image::store::LookupError::NotFound(_)) => return Ok(None),
        Err(e) => return Err(Status::internal(e.to_string())),
    };
    resolve(store, &rec)
        .map(Some)
        .map_err(|e| Status::internal(e.to_string()))
}

#[tonic::async_trait]
impl ImageService for Images {
    async fn list_images(&self, r: Request<ListImagesRequest>) -> R<ListImagesResponse> {
        let want = r
            .into_inner()
            .filter
            .and_then(|f| f.image)
            .map(|i| i.image)
            .filter(|i| !i.is_empty());
        let images = self
            .0
            .read(move |e| {
                let store = open(&e.root)?;
                let recs = store
                    .images()
                    .map_err(|e| Status::internal(e.to_string()))?;
                let mut out = Vec::new();
                for rec in recs {
                    let Ok(img) = resolve(&store, &rec) else {
                        continue;
                    };
                    out.push(to_image(&img));
                }
                if let Some(w) = want {
                    let one = lookup(&store, &w)?.map(|i| i.record.id.to_string());
                    out.retain(|i| Some(&i.id) == one.as_ref());
                }
                Ok(out)
            })
            .await?;
        Ok(Response::new(ListImagesResponse { images }))
    }

    async fn image_status(&self, r: Request<ImageStatusRequest>) -> R<ImageStatusResponse> {
        let name = r
            .into_inner()
            .image
            .map(|i| i.image)
            .filter(|i| !i.is_empty())
            .ok_or_else(|| Status::invalid_argument("ImageStatus: image is empty"))?;
        let image = self
            .0
            .read(move |e| Ok(lookup(&open(&e.root)?, &name)?.map(|i| to_image(&i))))
            .await?;
        Ok(Response::new(ImageStatusResponse {
            image,
            ..Default::default()
        }))
    }

    async fn pull_image(&self, r: Request<PullImageRequest>) -> R<PullImageResponse> {
        let r = r.into_inner();
        let name = r
            .image
            .map(|i| i.image)
            .filter(|i| !i.is_empty())
            .ok_or_else(|| Status::invalid_argument("PullImage: image is empty"))?;
        let mut args = vec!["pull".to_string(), "-q".into()];
        if let Some(a) = r.auth.filter(|a| !a.username.is_empty()) {
            args.push(format!("--creds={}:{}", a.username, a.password));
        }
        args.push(name);
        let id = self.0.berth(&args).await?;
        Ok(Response::new(PullImageResponse {
            image_ref: id.lines().last().unwrap_or_default().to_string(),
        }))
    }

    async fn remove_image(&self, r: Request<RemoveImageRequest>) -> R<RemoveImageResponse> {
        let name = r
            .into_inner()
            .image
            .map(|i| i.image)
            .filter(|i| !i.is_empty())
            .ok_or_else(|| Status::invalid_argument("RemoveImage: image is empty"))?;
        let found = {
            let name = name.clone();
            self.0
                .read(move |e| Ok(lookup(&open(&e.root)?, &name)?.map(|i| i.record)))
                .await?
        };
        // CRI: removing an image that is not there succeeds.
        if let Some(rec) = found {
            // Every name of it goes (crictl rmi by ID or by one name).
            let mut args = vec!["rmi".to_string(), "-f".into()];
            args.push(rec.id.to_string());
            self.0.berth(&args).await?;
        }
        Ok(Response::new(RemoveImageResponse {}))
    }

    async fn image_fs_info(&self, _: Request<ImageFsInfoRequest>) -> R<ImageFsInfoResponse> {
        let fs = self
            .0
            .read(|e| {
                let dir = e.root.join("images");
                let (mut bytes, mut inodes) = (0u64, 0u64);
                let mut stack = vec![dir.clone()];
                while let Some(d) = stack.pop() {
                    let Ok(rd) = std::fs::read_dir(&d) else {
                        continue;
                    };
                    for ent in rd.flatten() {
                        let Ok(md) = ent.metadata() else { continue };
                        inodes += 1;
                        if md.is_dir() {
                            stack.push(ent.path());
                        } else {
                            bytes += md.len();
                        }
                    }
                }
                Ok(FilesystemUsage {
                    timestamp: berth_engine::now_ms() * 1_000_000,
                    fs_id: Some(FilesystemIdentifier {
                        mountpoint: dir.display().to_string(),
                    }),
                    used_bytes: Some(UInt64Value { value: bytes }),
                    inodes_used: Some(UInt64Value { value: inodes }),
                })
            })
            .await?;
        Ok(Response::new(ImageFsInfoResponse {
            image_filesystems: vec![fs],
            ..Default::default()
        }))
    }
}
