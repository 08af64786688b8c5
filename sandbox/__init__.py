"""The loopback cluster Soteria's demo and end-to-end tests run on.

A real kube-apiserver and kube-controller-manager (built once from Debian's
source package), Debian's etcd, a Longhorn manager emulator, a kubelet
stand-in that runs Job pods with real restic, and a loopback S3 endpoint.
See docs/sandbox.md.
"""
