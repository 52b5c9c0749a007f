{{- define "modelmedic.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "modelmedic.fullname" -}}
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

{{- define "modelmedic.selectorLabels" -}}
app.kubernetes.io/name: {{ include "modelmedic.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "modelmedic.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{ include "modelmedic.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end }}

{{- define "modelmedic.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "modelmedic.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- required "serviceAccount.name is required when serviceAccount.create=false" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{- define "modelmedic.secretName" -}}
{{- if .Values.secrets.existingSecret }}
{{- .Values.secrets.existingSecret }}
{{- else if .Values.secrets.create }}
{{- include "modelmedic.fullname" . }}
{{- end }}
{{- end }}

{{/* The service's config file: the user's `config`, then what the chart must own. */}}
{{- define "modelmedic.config" -}}
{{- $config := deepCopy (default dict .Values.config) }}
{{- $http := deepCopy (default dict (get $config "http")) }}
{{- $_ := set $http "host" "0.0.0.0" }}
{{- $_ := set $http "port" (int .Values.service.port) }}
{{- $_ := set $config "http" $http }}
{{- $kube := deepCopy (default dict (get $config "kubernetes")) }}
{{- $_ := set $kube "in_cluster" (and .Values.remediation.enabled true) }}
{{- $_ := set $config "kubernetes" $kube }}
{{- if .Values.policy }}
{{- $_ := set $config "policy_file" "/etc/modelmedic/policy.yaml" }}
{{- end }}
{{- with .Values.registry.git }}
{{- if .url }}
{{- $git := dict "url" .url "ref" .ref "refresh_s" .refreshInterval "checkout_dir" "/var/lib/modelmedic/registry" "push_stats" .pushStats }}
{{- if .existingSecret }}
{{- $_ := set $git "credentials_dir" "/etc/modelmedic/registry-credentials" }}
{{- end }}
{{- $_ := set $config "registry_git" $git }}
{{- end }}
{{- end }}
{{- toYaml $config }}
{{- end }}

{{/* Every namespace the policy sends playbooks to must have the Role, or each remediation
     would be refused (403) mid-incident: fail at install instead. */}}
{{- define "modelmedic.checkTargets" -}}
{{- if and .Values.rbac.create .Values.remediation.enabled }}
{{- $targets := default dict (get (default dict .Values.policy) "targets") }}
{{- $needed := list (default "models" (get $targets "namespace")) }}
{{- range $model, $override := (default dict (get $targets "overrides")) }}
{{- if and $override (get $override "namespace") }}
{{- $needed = append $needed (get $override "namespace") }}
{{- end }}
{{- end }}
{{- range $namespace := $needed }}
{{- if not (has $namespace $.Values.rbac.namespaces) }}
{{- fail (printf "policy.targets sends playbooks to namespace %q, but rbac.namespaces (%s) gives no Role there: every remediation would be refused (403). Add it to rbac.namespaces." $namespace (join ", " $.Values.rbac.namespaces)) }}
{{- end }}
{{- end }}
{{- end }}
{{- end }}

{{/* Replicas spread over nodes and zones by default (ScheduleAnyway: a preference, so a small
     cluster still runs them all); the values' own constraints replace the default, their
     labelSelector defaulting to the chart's pods. A YAML list, read with fromYamlArray. */}}
{{- define "modelmedic.topologySpreadConstraints" -}}
{{- $selector := dict "matchLabels" (include "modelmedic.selectorLabels" . | fromYaml) }}
{{- $constraints := list }}
{{- if .Values.topologySpreadConstraints }}
{{- range .Values.topologySpreadConstraints }}
{{- $constraints = append $constraints (merge (deepCopy .) (dict "labelSelector" $selector)) }}
{{- end }}
{{- else if gt (int .Values.replicaCount) 1 }}
{{- range $key := list "kubernetes.io/hostname" "topology.kubernetes.io/zone" }}
{{- $constraints = append $constraints (dict "maxSkew" 1 "topologyKey" $key "whenUnsatisfiable" "ScheduleAnyway"
      "labelSelector" $selector "matchLabelKeys" (list "pod-template-hash")) }}
{{- end }}
{{- end }}
{{- toYaml $constraints }}
{{- end }}

{{/* The `helm test` pod's labels: not the selector labels, so neither the Deployment, the
     Services nor the PodDisruptionBudget count it as a replica. */}}
{{- define "modelmedic.testLabels" -}}
app.kubernetes.io/name: {{ include "modelmedic.name" . }}-test
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/component: helm-test
{{- end }}
