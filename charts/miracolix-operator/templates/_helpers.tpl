{{/* Chart name, overridable. */}}
{{- define "miracolix-operator.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Full name: <release>-<chart>, or the release name when it already contains the chart name. */}}
{{- define "miracolix-operator.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- $name := default .Chart.Name .Values.nameOverride }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{- define "miracolix-operator.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Standard labels on every object. */}}
{{- define "miracolix-operator.labels" -}}
helm.sh/chart: {{ include "miracolix-operator.chart" . }}
{{ include "miracolix-operator.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/component: operator
app.kubernetes.io/part-of: miracolix
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end }}

{{/* Selector labels: stable across upgrades (a Deployment's selector is immutable). */}}
{{- define "miracolix-operator.selectorLabels" -}}
app.kubernetes.io/name: {{ include "miracolix-operator.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "miracolix-operator.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "miracolix-operator.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- required "serviceAccount.name is required when serviceAccount.create is false" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{/*
"true" for the namespaced install (the default): --namespace per watchNamespaces entry and a Role
in each. Fails when it has no namespace to watch.
*/}}
{{- define "miracolix-operator.namespaced" -}}
{{- if not .Values.clusterWide }}
{{- if not .Values.watchNamespaces }}
{{- fail "watchNamespaces is empty: list the namespaces of your DizSites (the namespaced install, the default), or set clusterWide: true to watch every namespace" }}
{{- end }}true
{{- end }}
{{- end }}

{{/* "true" when the operator runs with --leader-elect. */}}
{{- define "miracolix-operator.leaderElect" -}}
{{- if or (gt (int .Values.replicas) 1) .Values.leaderElection.enabled }}true{{ end }}
{{- end }}

{{/* The image reference: repository@digest when a digest is set, else repository:tag. */}}
{{- define "miracolix-operator.image" -}}
{{- if .Values.image.digest }}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest }}
{{- else }}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) }}
{{- end }}
{{- end }}

{{/* The Secret with the trusted release-signing keys that the Deployment mounts. */}}
{{- define "miracolix-operator.trustedKeysSecret" -}}
{{- if and .Values.trustedKeys.keys .Values.trustedKeys.existingSecret }}
{{- fail "trustedKeys: set either existingSecret or keys, not both" }}
{{- end }}
{{- if .Values.trustedKeys.keys }}
{{- printf "%s-trusted-keys" (include "miracolix-operator.fullname" .) | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- default "miracolix-trusted-keys" .Values.trustedKeys.existingSecret }}
{{- end }}
{{- end }}

{{/* The five CRDs this chart ships (crds/), for resourceNames. */}}
{{- define "miracolix-operator.crdNames" -}}
- componentreleases.diz.miracum.org
- dizsites.diz.miracum.org
- feasibilityendpoints.diz.miracum.org
- proposalinboxes.diz.miracum.org
- releaserevocations.diz.miracum.org
{{- end }}

{{/*
RBAC rules for cluster-scoped objects: ComponentReleases, ReleaseRevocations and the CRDs by name. Always in a
ClusterRole (they are cluster-scoped), in both install modes: the minimal cluster-wide part.
*/}}
{{- define "miracolix-operator.rules.cluster" -}}
# ComponentReleases and ReleaseRevocations are cluster-scoped: the controllers read them (a site's
# release or channel is resolved against all releases, revoked ones excluded) and watch them.
- apiGroups: ["diz.miracum.org"]
  resources: ["componentreleases", "releaserevocations"]
  verbs: ["list", "watch"]
# Their controllers write status (certified, reason, revoked, sites running it). Status only: the
# operator never changes a release's or a revocation's spec or signature.
- apiGroups: ["diz.miracum.org"]
  resources: ["componentreleases/status", "releaserevocations/status"]
  verbs: ["patch"]
# FeasibilityEndpoints and ProposalInboxes are namespaced: their rules are in the
# per-namespace Role (rbac-namespaced.yaml).
# CRDs: `get` to read this operator's own CRDs (waiting for them to be established), and
# `list` + `watch` of CloudNativePG's (clusters.postgresql.cnpg.io, by field selector on its
# name) to know whether databases can be built. Restricted by name: the operator cannot read
# other CRDs.
- apiGroups: ["apiextensions.k8s.io"]
  resources: ["customresourcedefinitions"]
  resourceNames:
    - clusters.postgresql.cnpg.io
  verbs: ["list", "watch"]
- apiGroups: ["apiextensions.k8s.io"]
  resources: ["customresourcedefinitions"]
  resourceNames:
{{ include "miracolix-operator.crdNames" . | indent 4 }}
  verbs: ["get"]
{{- if .Values.crds.manageOnStartup }}
# crds.manageOnStartup: the operator server-side applies its own five CRDs at start-up (Helm never
# upgrades crds/). Restricted by resourceNames to exactly those five.
# No `create`: the install paths (Helm crds/, `kubectl apply -f crds/`) create the CRDs before the
# operator starts, and the operator only updates them. Server-side apply is a PATCH to
# .../customresourcedefinitions/<name>, authorized as `patch` on that name; an apply that would
# create a missing CRD is also authorized as `create`, which is not granted, so a CRD deleted by
# hand is refused (403, logged) and must be applied again with kubectl.
- apiGroups: ["apiextensions.k8s.io"]
  resources: ["customresourcedefinitions"]
  resourceNames:
{{ include "miracolix-operator.crdNames" . | indent 4 }}
  verbs: ["patch"]
{{- end }}
{{- end }}

{{/*
RBAC rules of the release feed follower, only with feed.url.
*/}}
{{- define "miracolix-operator.rules.feed" -}}
# The release feed follower (feed.url / --feed-url): it server-side applies the ComponentReleases
# and ReleaseRevocations of the consortium's feed that verify with the trusted keys. An apply is a
# PATCH; an apply that creates the object is also authorized as `create` (kube-apiserver's patch
# handler), so both. No `delete`, no `update`: the follower never deletes, and it never writes an
# object it did not create (docs/consortium.md).
- apiGroups: ["diz.miracum.org"]
  resources: ["componentreleases", "releaserevocations"]
  verbs: ["create", "patch"]
{{- end }}

{{/*
RBAC rules for what the operator does inside a site's namespace (DizSites, their children, their
Events). In one Role per watched namespace (the default), in a ClusterRole with clusterWide: true.
The operator reads DizSites only in the namespaces it watches (Context::list_dizsites).
*/}}
{{- define "miracolix-operator.rules.site" -}}
# DizSites: the controller watches them (and its cache reads the site's namespace: a rollback
# there halts a release there); `patch` adds and removes its finalizer (diz.miracum.org/cleanup) and clears the
# one-shot annotations diz.miracum.org/retry-release and diz.miracum.org/allow-downgrade-to.
# `get`: only so that the operator may write the reporter's Role, which grants `get` on one
# DizSite (Kubernetes refuses a Role that grants more than its writer holds); the operator
# itself reads DizSites from its watch.
- apiGroups: ["diz.miracum.org"]
  resources: ["dizsites"]
  verbs: ["get", "list", "watch", "patch"]
# DizSite status: conditions, current/target release, component health (server-side apply).
- apiGroups: ["diz.miracum.org"]
  resources: ["dizsites/status"]
  verbs: ["patch"]
# FeasibilityEndpoints and ProposalInboxes: their controllers watch them and write their status
# (conditions, observedGeneration; an inbox's counts). Their objects are covered by the rules below
# (deployments, services, configmaps, networkpolicies, ingresses, persistentvolumeclaims). The
# Secrets they reference (the gate's DSF token, the inbox's keys and client secrets) are mounted
# by their pods, never read by the operator: a missing one shows in the kubelet's FailedMount
# Event (events list + watch, below).
- apiGroups: ["diz.miracum.org"]
  resources: ["feasibilityendpoints", "proposalinboxes"]
  verbs: ["list", "watch"]
- apiGroups: ["diz.miracum.org"]
  resources: ["feasibilityendpoints/status", "proposalinboxes/status"]
  verbs: ["patch"]
# The site's children. list + watch: every kind the operator creates is watched (label-selected
# by app.kubernetes.io/managed-by), so drift is repaired within seconds and a reconcile reads
# caches, not the API server; get: a cached child whose content changed since it last matched
# is read once and compared field by field; patch: server-side apply; create: an apply that creates the object is authorized as `create` too (kube-apiserver's patch handler);
# delete: remove children no longer desired. No Secrets: the operator references the site's
# Secrets but never reads them.
- apiGroups: ["apps"]
  resources: ["deployments", "statefulsets"]
  verbs: ["get", "list", "watch", "create", "patch", "delete"]
- apiGroups: [""]
  resources: ["services", "configmaps"]
  verbs: ["get", "list", "watch", "create", "patch", "delete"]
- apiGroups: ["batch"]
  resources: ["cronjobs"]
  verbs: ["get", "list", "watch", "create", "patch", "delete"]
- apiGroups: ["networking.k8s.io"]
  resources: ["networkpolicies", "ingresses"]
  verbs: ["get", "list", "watch", "create", "patch", "delete"]
# The reporter of a site with spec.reporting (docs/consortium.md): its ServiceAccount, a Role
# allowing only `get` on its own DizSite (by resourceNames) and their RoleBinding; children
# like the others. The reporter's key Secret is mounted by its pod, never read by the operator.
- apiGroups: [""]
  resources: ["serviceaccounts"]
  verbs: ["get", "list", "watch", "create", "patch", "delete"]
- apiGroups: ["rbac.authorization.k8s.io"]
  resources: ["roles", "rolebindings"]
  verbs: ["get", "list", "watch", "create", "patch", "delete"]
# The site's pods, read only, watched (label-selected by diz.miracum.org/site): their container
# statuses say why a component is not ready (CreateContainerConfigError, CrashLoopBackOff,
# OOMKilled), which the DizSite status reports.
- apiGroups: [""]
  resources: ["pods"]
  verbs: ["list", "watch"]
# Patient data. TORCH's output volume is a claim the operator applies (patch, get when its
# content changed); Blaze's claims come from its StatefulSet. Watched like every child; delete
# only when a DizSite with deletionPolicy Delete is deleted.
- apiGroups: [""]
  resources: ["persistentvolumeclaims"]
  verbs: ["get", "list", "watch", "create", "patch", "delete"]
# CloudNativePG databases of the site (when CloudNativePG is installed): server-side apply (patch, and create for the first apply),
# watched like every child, get when its content changed, delete only on site deletion with
# deletionPolicy Delete.
- apiGroups: ["postgresql.cnpg.io"]
  resources: ["clusters"]
  verbs: ["get", "list", "watch", "create", "patch", "delete"]
# Events on DizSites (Applied, Upgrading, RolledBack, DataRetained, …): create, and patch to bump
# the count of a repeated event; list + watch of the kubelet's FailedMount Events (field selector
# reason=FailedMount) about the site's pods: a missing Secret mounted as a file shows nowhere
# else. events.k8s.io/v1 only.
- apiGroups: ["events.k8s.io"]
  resources: ["events"]
  verbs: ["create", "patch", "list", "watch"]
{{- end }}

{{/* Events only: for ComponentRelease events, which Kubernetes puts in the `default` namespace. */}}
{{- define "miracolix-operator.rules.events" -}}
# Events on ComponentReleases (Warning when a release stops being certified). They are cluster-
# scoped, so their Events go to the `default` namespace.
- apiGroups: ["events.k8s.io"]
  resources: ["events"]
  verbs: ["create", "patch"]
{{- end }}

{{/* Leader election, in the release namespace only. */}}
{{- define "miracolix-operator.rules.leaderElection" -}}
# Leader election: one Lease in the operator's own namespace. get + update to hold and renew it,
# create for the first start. (create cannot be restricted by name; the Role's namespace limits it.)
- apiGroups: ["coordination.k8s.io"]
  resources: ["leases"]
  verbs: ["get", "create", "update"]
{{- end }}

{{/* The hub's objects (hub.enabled): name, labels, selector labels. */}}
{{- define "miracolix-operator.hubName" -}}
{{- printf "%s-hub" (include "miracolix-operator.fullname" .) | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "miracolix-operator.hubSelectorLabels" -}}
app.kubernetes.io/name: miracolix-hub
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "miracolix-operator.hubLabels" -}}
helm.sh/chart: {{ include "miracolix-operator.chart" . }}
{{ include "miracolix-operator.hubSelectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/component: hub
app.kubernetes.io/part-of: miracolix
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end }}

{{/* The hub's sites registry ConfigMap: the chart's (hub.sites.registry) or one you create. */}}
{{- define "miracolix-operator.hubSitesConfigMap" -}}
{{- if and .Values.hub.sites.registry .Values.hub.sites.existingConfigMap }}
{{- fail "hub.sites: set either existingConfigMap or registry, not both" }}
{{- end }}
{{- if .Values.hub.sites.registry }}
{{- printf "%s-sites" (include "miracolix-operator.hubName" .) | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- default "miracolix-hub-sites" .Values.hub.sites.existingConfigMap }}
{{- end }}
{{- end }}
