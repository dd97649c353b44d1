//! eBPF program loading and cgroup attachment (bpf(2)), for the cgroup v2
//! device controller.
