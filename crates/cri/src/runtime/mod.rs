//! CRI RuntimeService on berth pods (sandboxes) and containers: the
//! gRPC trait, answered by `sandbox` (pod sandboxes), `container`
//! (containers, ExecSync, stats) and `streaming` (Exec, Attach,
//! PortForward URLs).

use std::collections::HashMap;
use std::sync::Arc;

use k8s_cri::v1::runtime_service_server::RuntimeService;
use k8s_cri::v1::*;
use tonic::{Request, Response, Status};

use crate::Ctx;

mod container;
mod sandbox;
mod streaming;

pub(crate) use container::{find_container, running};
pub(crate) use sandbox::find_sandbox;

pub struct Runtime(pub Arc<Ctx>);

type R<T> = Result<Response<T>, Status>;

fn unimplemented(call: &str) -> Status {
    Status::unimplemented(format!(
        "{call} is not implemented by berth cri (see docs/kubernetes.md)"
    ))
}

fn labels_match(want: &HashMap<String, String>, have: &HashMap<String, String>) -> bool {
    want.iter().all(|(k, v)| have.get(k) == Some(v))
}

#[tonic::async_trait]
impl RuntimeService for Runtime {
    async fn version(&self, _: Request<VersionRequest>) -> R<VersionResponse> {
        Ok(Response::new(VersionResponse {
            version: "0.1.0".into(),
            runtime_name: "berth".into(),
            runtime_version: env!("CARGO_PKG_VERSION").into(),
            runtime_api_version: "v1".into(),
        }))
    }

    async fn run_pod_sandbox(&self, r: Request<RunPodSandboxRequest>) -> R<RunPodSandboxResponse> {
        let t0 = std::time::Instant::now();
        let res = sandbox::run_pod_sandbox(&self.0, r.into_inner()).await;
        crate::inproc::trace("RunPodSandbox", t0);
        res.map(Response::new)
    }

    async fn stop_pod_sandbox(
        &self,
        r: Request<StopPodSandboxRequest>,
    ) -> R<StopPodSandboxResponse> {
        let t0 = std::time::Instant::now();
        let res = sandbox::stop_pod_sandbox(&self.0, r.into_inner()).await;
        crate::inproc::trace("StopPodSandbox", t0);
        res.map(Response::new)
    }

    async fn remove_pod_sandbox(
        &self,
        r: Request<RemovePodSandboxRequest>,
    ) -> R<RemovePodSandboxResponse> {
        let t0 = std::time::Instant::now();
        let res = sandbox::remove_pod_sandbox(&self.0, r.into_inner()).await;
        crate::inproc::trace("RemovePodSandbox", t0);
        res.map(Response::new)
    }

    async fn pod_sandbox_status(
        &self,
        r: Request<PodSandboxStatusRequest>,
    ) -> R<PodSandboxStatusResponse> {
        sandbox::pod_sandbox_status(&self.0, r.into_inner())
            .await
            .map(Response::new)
    }

    async fn list_pod_sandbox(
        &self,
        r: Request<ListPodSandboxRequest>,
    ) -> R<ListPodSandboxResponse> {
        sandbox::list_pod_sandbox(&self.0, r.into_inner())
            .await
            .map(Response::new)
    }

    async fn create_container(
        &self,
        r: Request<CreateContainerRequest>,
    ) -> R<CreateContainerResponse> {
        let t0 = std::time::Instant::now();
        let res = container::create_container(&self.0, r.into_inner()).await;
        crate::inproc::trace("CreateContainer", t0);
        res.map(Response::new)
    }

    async fn start_container(
        &self,
        r: Request<StartContainerRequest>,
    ) -> R<StartContainerResponse> {
        let t0 = std::time::Instant::now();
        let res = container::start_container(&self.0, r.into_inner()).await;
        crate::inproc::trace("StartContainer", t0);
        res.map(Response::new)
    }

    async fn stop_container(&self, r: Request<StopContainerRequest>) -> R<StopContainerResponse> {
        container::stop_container(&self.0, r.into_inner())
            .await
            .map(Response::new)
    }

    async fn remove_container(
        &self,
        r: Request<RemoveContainerRequest>,
    ) -> R<RemoveContainerResponse> {
        container::remove_container(&self.0, r.into_inner())
            .await
            .map(Response::new)
    }

    async fn list_containers(
        &self,
        r: Request<ListContainersRequest>,
    ) -> R<ListContainersResponse> {
        container::list_containers(&self.0, r.into_inner())
            .await
            .map(Response::new)
    }

    async fn container_status(
        &self,
        r: Request<ContainerStatusRequest>,
    ) -> R<ContainerStatusResponse> {
        container::container_status(&self.0, r.into_inner())
            .await
            .map(Response::new)
    }

    async fn update_container_resources(
        &self,
        r: Request<UpdateContainerResourcesRequest>,
    ) -> R<UpdateContainerResourcesResponse> {
        container::update_container_resources(&self.0, r.into_inner())
            .await
            .map(Response::new)
    }

    async fn reopen_container_log(
        &self,
        r: Request<ReopenContainerLogRequest>,
    ) -> R<ReopenContainerLogResponse> {
        container::reopen_container_log(&self.0, r.into_inner())
            .await
            .map(Response::new)
    }

    async fn exec_sync(&self, r: Request<ExecSyncRequest>) -> R<ExecSyncResponse> {
        container::exec_sync(&self.0, r.into_inner())
            .await
            .map(Response::new)
    }

    async fn exec(&self, r: Request<ExecRequest>) -> R<ExecResponse> {
        streaming::exec(&self.0, r.into_inner())
            .await
            .map(Response::new)
    }

    async fn attach(&self, r: Request<AttachRequest>) -> R<AttachResponse> {
        streaming::attach(&self.0, r.into_inner())
            .await
            .map(Response::new)
    }

    async fn port_forward(&self, r: Request<PortForwardRequest>) -> R<PortForwardResponse> {
        streaming::port_forward(&self.0, r.into_inner())
            .await
            .map(Response::new)
    }

    async fn container_stats(
        &self,
        r: Request<ContainerStatsRequest>,
    ) -> R<ContainerStatsResponse> {
        container::container_stats(&self.0, r.into_inner())
            .await
            .map(Response::new)
    }

    async fn list_container_stats(
        &self,
        r: Request<ListContainerStatsRequest>,
    ) -> R<ListContainerStatsResponse> {
        container::list_container_stats(&self.0, r.into_inner())
            .await
            .map(Response::new)
    }

    async fn pod_sandbox_stats(
        &self,
        _: Request<PodSandboxStatsRequest>,
    ) -> R<PodSandboxStatsResponse> {
        Err(unimplemented("PodSandboxStats"))
    }

    async fn list_pod_sandbox_stats(
        &self,
        _: Request<ListPodSandboxStatsRequest>,
    ) -> R<ListPodSandboxStatsResponse> {
        Err(unimplemented("ListPodSandboxStats"))
    }

    async fn update_runtime_config(
        &self,
        _: Request<UpdateRuntimeConfigRequest>,
    ) -> R<UpdateRuntimeConfigResponse> {
        // The pod CIDR the kubelet hands out: berth's bridge driver picks
        // its own subnet, so there is nothing to apply.
        Ok(Response::new(UpdateRuntimeConfigResponse {}))
    }

    async fn status(&self, _: Request<StatusRequest>) -> R<StatusResponse> {
        let cond = |t: &str| RuntimeCondition {
            r#type: t.into(),
            status: true,
            ..Default::default()
        };
        Ok(Response::new(StatusResponse {
            status: Some(RuntimeStatus {
                conditions: vec![cond("RuntimeReady"), cond("NetworkReady")],
            }),
            ..Default::default()
        }))
    }

    async fn checkpoint_container(
        &self,
        _: Request<CheckpointContainerRequest>,
    ) -> R<CheckpointContainerResponse> {
        Err(unimplemented("CheckpointContainer"))
    }

    type GetContainerEventsStream = tokio_stream::Empty<Result<ContainerEventResponse, Status>>;

    async fn get_container_events(
        &self,
        _: Request<GetEventsRequest>,
    ) -> R<Self::GetContainerEventsStream> {
        Err(unimplemented("GetContainerEvents"))
    }

    async fn list_metric_descriptors(
        &self,
        _: Request<ListMetricDescriptorsRequest>,
    ) -> R<ListMetricDescriptorsResponse> {
        Err(unimplemented("ListMetricDescriptors"))
    }

    async fn list_pod_sandbox_metrics(
        &self,
        _: Request<ListPodSandboxMetricsRequest>,
    ) -> R<ListPodSandboxMetricsResponse> {
        Err(unimplemented("ListPodSandboxMetrics"))
    }

    async fn runtime_config(&self, _: Request<RuntimeConfigRequest>) -> R<RuntimeConfigResponse> {
        Err(unimplemented("RuntimeConfig"))
    }
}
