{{/* Chart name, fullname and labels. */}}
{{- define "latchkey.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "latchkey.fullname" -}}
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

{{- define "latchkey.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
app.kubernetes.io/name: {{ include "latchkey.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: latchkey
{{- end }}

{{/* The manager's Pods; the webhook and metrics Services select them. */}}
{{- define "latchkey.managerSelector" -}}
app.kubernetes.io/name: {{ include "latchkey.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
control-plane: controller-manager
{{- end }}

{{/* The verifier-only Pods. */}}
{{- define "latchkey.verifierSelector" -}}
app.kubernetes.io/name: {{ include "latchkey.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/component: verifier
{{- end }}

{{- define "latchkey.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "latchkey.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{- define "latchkey.verifierServiceAccountName" -}}
{{- printf "%s-verifier" (include "latchkey.fullname" .) | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "latchkey.image" -}}
{{- if .Values.image.digest }}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest }}
{{- else }}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) }}
{{- end }}
{{- end }}

{{- define "latchkey.webhookServiceName" -}}
{{- printf "%s-webhook-service" (include "latchkey.fullname" .) | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "latchkey.webhookCertSecret" -}}
{{- printf "%s-webhook-server-cert" (include "latchkey.fullname" .) | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
The ValidatingWebhookConfiguration's name is fixed: the operator injects the
CA bundle into it by this name, so one Latchkey is installed per cluster (its
CRDs are cluster-wide anyway).
*/}}
{{- define "latchkey.webhookConfigurationName" -}}
latchkey-validating-webhook-configuration
{{- end }}

{{/*
The token namespace: backing tokens (lk-*), client-id claims (lkid-*), the
access-token signing keys and the verifier heartbeat, and nothing else, so the
verifier's ServiceAccount can be given read access to exactly them.
Default: <release namespace>-tokens.
*/}}
{{- define "latchkey.tokenNamespace" -}}
{{- $ns := default (printf "%s-tokens" .Release.Namespace) .Values.tokenNamespace.name }}
{{- if gt (len $ns) 63 }}
{{- fail (printf "the token namespace %q is longer than 63 characters: set tokenNamespace.name" $ns) }}
{{- end }}
{{- if has $ns .Values.watchNamespaces }}
{{- fail (printf "tokenNamespace.name %q is a watched namespace: the verifier would read every Secret of it; use a namespace of its own" $ns) }}
{{- end }}
{{- $ns }}
{{- end }}

{{/* Whether the manager's Pods serve the verification service too. */}}
{{- define "latchkey.managerServesVerifier" -}}
{{- if .Values.verifier.servedByManager }}true{{ end }}
{{- end }}

{{/* The metrics scheme, from metrics.secure. */}}
{{- define "latchkey.metricsScheme" -}}
{{- if .Values.metrics.secure }}https{{ else }}http{{ end }}
{{- end }}

{{/*
What a metrics server needs when metrics.secure: it reviews the caller's
bearer token (TokenReview) and asks whether the caller may GET /metrics
(SubjectAccessReview).
*/}}
{{- define "latchkey.rules.metricsAuth" -}}
{{- if .Values.metrics.secure -}}
- apiGroups: ["authentication.k8s.io"]
  resources: ["tokenreviews"]
  verbs: ["create"]
- apiGroups: ["authorization.k8s.io"]
  resources: ["subjectaccessreviews"]
  verbs: ["create"]
{{- end }}
{{- end }}

{{/* Namespaces the manager needs Roles in (namespaced mode), deduplicated. */}}
{{- define "latchkey.watchedNamespaces" -}}
{{- $out := list }}
{{- range .Values.watchNamespaces }}
{{- if and (ne . $.Release.Namespace) (not (has . $out)) }}
{{- $out = append $out . }}
{{- end }}
{{- end }}
{{- toJson $out }}
{{- end }}

{{/* Common Pod security settings: non-root, read-only root, no privileges. */}}
{{- define "latchkey.podSecurityContext" -}}
runAsNonRoot: true
runAsUser: 65532
runAsGroup: 65532
fsGroup: 65532
seccompProfile:
  type: RuntimeDefault
{{- end }}

{{- define "latchkey.containerSecurityContext" -}}
allowPrivilegeEscalation: false
readOnlyRootFilesystem: true
runAsNonRoot: true
capabilities:
  drop:
    - ALL
seccompProfile:
  type: RuntimeDefault
{{- end }}

{{/* What the manager does in every namespace it manages (see rbac.yaml). */}}
{{- define "latchkey.rules.namespace" -}}
- apiGroups: ["latchkey.dev"]
  resources: ["apiclients", "credentialgrants"]
  verbs: ["get", "list", "watch", "update", "patch"]
- apiGroups: ["latchkey.dev"]
  resources: ["apiclients/status", "credentialgrants/status"]
  verbs: ["get", "update", "patch"]
- apiGroups: ["latchkey.dev"]
  resources: ["apiclients/finalizers", "credentialgrants/finalizers"]
  verbs: ["update"]
# Consumer Secrets (created, patched, deleted; only Latchkey's own are
# cached) and Secrets named by spec.clientSecretRef (read uncached).
- apiGroups: [""]
  resources: ["secrets"]
  verbs: ["get", "list", "watch", "create", "update", "patch", "delete"]
- apiGroups: ["events.k8s.io"]
  resources: ["events"]
  verbs: ["create", "patch"]
{{- end }}

{{/* Settings shared by both webhooks (see webhook.yaml). */}}
{{- define "latchkey.webhook.common" }}
  admissionReviewVersions: ["v1"]
  failurePolicy: {{ .Values.webhook.failurePolicy }}
  matchPolicy: Equivalent
  sideEffects: None
  timeoutSeconds: {{ .Values.webhook.timeoutSeconds }}
  {{- if .Values.watchNamespaces }}
  # Namespaced mode: objects elsewhere are not Latchkey's to manage.
  namespaceSelector:
    matchExpressions:
    - key: kubernetes.io/metadata.name
      operator: In
      values: {{ toJson .Values.watchNamespaces }}
  {{- end }}
{{- end }}
