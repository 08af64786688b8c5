"""PVCs with what stands behind them: the bound PV and the storage class."""

from __future__ import annotations

from django.conf import settings

from soteria_site.core import kubernetes
from soteria_site.core.errors import InvalidInput, NotFound
from soteria_site.core.kubernetes import Pv, Pvc, StorageClass
from soteria_site.core.names import require_dns_label, require_dns_subdomain

from ..clients import longhorn
from ..types import Claim


def list_claims(namespace: str | None = None) -> list[Claim]:
    """Every PVC (of one namespace, or all), in three list calls whatever their number."""
    pvcs = kubernetes.list_pvcs(namespace)
    pvs = {pv.name: pv for pv in kubernetes.list_pvs()}
    classes = {sc.name: sc for sc in kubernetes.list_storage_classes()}
    return [_claim(pvc, pvs, classes) for pvc in sorted(pvcs, key=lambda p: (p.namespace, p.name))]


def list_batch(namespace: str) -> list[Claim]:
    """The claims of a namespace-wide backup or restore; more than SOTERIA_NAMESPACE_BATCH_MAX is refused
    before any work, so one request cannot start thousands of operations or answer megabytes."""
    claim_list = list_claims(namespace)
    limit = settings.SOTERIA_NAMESPACE_BATCH_MAX
    if len(claim_list) > limit:
        raise InvalidInput(f"namespace {namespace} has {len(claim_list)} PVCs; a namespace-wide request handles at "
                           f"most {limit} (SOTERIA_NAMESPACE_BATCH_MAX): act on PVCs one by one or raise the limit",
                           field="namespace", code="batch_too_large", pvcs=len(claim_list), limit=limit)
    return claim_list


def _claim(pvc: Pvc, pvs: dict[str, Pv], classes: dict[str, StorageClass]) -> Claim:
    pv = pvs.get(pvc.volume_name or "")
    # A PV only counts if it is bound back to this claim.
    if pv and (pv.claim_namespace, pv.claim_name) != (pvc.namespace, pvc.name):
        pv = None
    return Claim(pvc=pvc, pv=pv, storage_class=classes.get(pvc.storage_class or ""))


def get_claim(namespace: str, name: str) -> Claim:
    """One PVC and its PV; NotFound names the claim."""
    require_dns_label(namespace, "namespace")
    require_dns_subdomain(name, "pvc")
    pvc = kubernetes.find_pvc(namespace, name)
    if pvc is None:
        raise NotFound(f"PVC {namespace}/{name} not found")
    pv = None
    if pvc.volume_name:
        try:
            pv = kubernetes.get_pv(pvc.volume_name)
        except NotFound:
            pv = None
        if pv and (pv.claim_namespace, pv.claim_name) != (namespace, name):
            pv = None
    return Claim(pvc=pvc, pv=pv, storage_class=None)


def require_namespace(namespace: str, field: str = "namespace") -> None:
    require_dns_label(namespace, field)
    if not kubernetes.namespace_exists(namespace):
        raise NotFound(f"namespace {namespace!r} not found", field=field)


def in_use(volume: str, pv: Pv | None, ignore: tuple[str, str] | None = None) -> str:
    """Why a Longhorn volume or a PV is in use by a claim other than `ignore` ("" when neither
    is): what a clean-up deletes by name must not be a live claim's storage, whoever named it.
    Judged from Kubernetes, by the PVs whose volume handle is the volume: a Longhorn volume's
    own kubernetesStatus is no guide (a restored volume carries its source's, from the backup)."""
    def claim_of(candidate: Pv) -> str:
        key = (candidate.claim_namespace or "", candidate.claim_name or "")
        if not key[1] or key == ignore or kubernetes.find_pvc(*key) is None:
            return ""
        return f"{key[0]}/{key[1]}"

    if pv is not None and claim_of(pv):
        return f"PV {pv.name} is bound to claim {claim_of(pv)}"
    if not volume:
        return ""
    found = longhorn.get_volume(volume)
    for name in sorted({volume, found.pv_name if found else ""} - {"", pv.name if pv else ""}):
        other = kubernetes.find_pv(name)
        if other is not None and other.volume_handle == volume and claim_of(other):
            return f"volume {volume} is used by claim {claim_of(other)} (PV {other.name})"
    return ""
