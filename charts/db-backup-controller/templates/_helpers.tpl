{{/*
Names, labels and image references shared by every template (the monitoring
templates too). Names are cut to 63 characters, the limit of a label value.
*/}}

{{/* The chart's name: app.kubernetes.io/name. */}}
{{- define "db-backup-controller.name" -}}
{{- .Chart.Name | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
The name of every object of the release: the release name when it already
holds the chart's name (`helm install db-backup-controller ...`), else
<release>-<chart>.
*/}}
{{- define "db-backup-controller.fullname" -}}
{{- if contains .Chart.Name .Release.Name }}
{{- .Release.Name | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name .Chart.Name | trunc 63 | trimSuffix "-" }}
{{- end }}
{{- end }}

{{/* helm.sh/chart: <name>-<version>. */}}
{{- define "db-backup-controller.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Labels of every object of the release. */}}
{{- define "db-backup-controller.labels" -}}
helm.sh/chart: {{ include "db-backup-controller.chart" . }}
app.kubernetes.io/name: {{ include "db-backup-controller.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: db-backup-controller
{{- end }}

{{/* Selector of the controller's pods (its Deployment, Service, PodDisruptionBudget and ServiceMonitor). */}}
{{- define "db-backup-controller.selectorLabels" -}}
app.kubernetes.io/name: {{ include "db-backup-controller.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/component: controller
{{- end }}

{{/* Labels of the controller's own objects: the release's labels plus its component. */}}
{{- define "db-backup-controller.controllerLabels" -}}
{{ include "db-backup-controller.labels" . }}
app.kubernetes.io/component: controller
{{- end }}

{{/* The controller's ServiceAccount. */}}
{{- define "db-backup-controller.serviceAccountName" -}}
{{- include "db-backup-controller.fullname" . }}
{{- end }}

{{/*
Leader election: on when asked, and always with two or more replicas (two
controllers acting at once would fight over every runner).
*/}}
{{- define "db-backup-controller.leaderElection" -}}
{{- if or .Values.leaderElection.enabled (gt (int .Values.replicaCount) 1) }}true{{ else }}false{{ end }}
{{- end }}

{{/* <registry>/<repository>, or <repository> alone when the registry is empty. */}}
{{- define "db-backup-controller.repository" -}}
{{- if .registry }}{{ printf "%s/%s" .registry .repository }}{{ else }}{{ .repository }}{{ end }}
{{- end }}

{{/* The controller's image: <registry>/<repository>:<tag>, the tag defaulting to the chart's appVersion. */}}
{{- define "db-backup-controller.image" -}}
{{- $repository := include "db-backup-controller.repository" (dict "registry" .Values.image.registry "repository" .Values.image.repository) }}
{{- printf "%s:%s" $repository (.Values.image.tag | default .Chart.AppVersion) }}
{{- end }}

{{/*
A runner image: <registry>/<repositoryPrefix>-<engine>:<version>-<tag>, the
tag defaulting to the chart's appVersion.
Call with (dict "root" $ "engine" "postgresql" "version" "16").
*/}}
{{- define "db-backup-controller.runnerImage" -}}
{{- $image := .root.Values.runner.image }}
{{- $repository := include "db-backup-controller.repository" (dict "registry" $image.registry "repository" (printf "%s-%s" $image.repositoryPrefix .engine)) }}
{{- printf "%s:%s-%s" $repository .version ($image.tag | default .root.Chart.AppVersion) }}
{{- end }}

{{/*
A shipped tool's runner image: <registry>/<repositoryPrefix>-<tool>:<tag>, the
tag defaulting to the chart's appVersion (one image per tool, any server version).
Call with (dict "root" $ "tool" "redis").
*/}}
{{- define "db-backup-controller.toolImage" -}}
{{- $image := .root.Values.runner.image }}
{{- $repository := include "db-backup-controller.repository" (dict "registry" $image.registry "repository" (printf "%s-%s" $image.repositoryPrefix .tool)) }}
{{- printf "%s:%s" $repository ($image.tag | default .root.Chart.AppVersion) }}
{{- end }}

{{/*
The shipped engines the controller installs: for every enabled engines.<name>,
the spec generated from tools/<name>/ (engines/<name>.json, written by
scripts/generate.ts) with the tool's runner image and the allowed namespaces.
*/}}
{{- define "db-backup-controller.engines" -}}
{{- $engines := dict }}
{{- range $name, $e := .Values.engines }}
{{- if $e.enabled }}
{{- $text := $.Files.Get (printf "engines/%s.json" $name) }}
{{- if not $text }}
{{- fail (printf "engines.%s: the chart ships no engine %q (it has: %s)" $name $name (include "db-backup-controller.shippedEngineNames" $)) }}
{{- end }}
{{- $spec := fromJson $text }}
{{- if hasKey $spec "Error" }}
{{- fail (printf "engines/%s.json is not a JSON object (%s): run make generate" $name $spec.Error) }}
{{- end }}
{{- $_ := set $spec "image" (include "db-backup-controller.toolImage" (dict "root" $ "tool" $name)) }}
{{- with $e.allowedNamespaces }}
{{- $_ := set $spec "allowedNamespaces" . }}
{{- end }}
{{- $_ := set $engines $name $spec }}
{{- end }}
{{- end }}
{{- toJson $engines }}
{{- end }}

{{/* The shipped engines switched off: the controller deletes each one it installed. */}}
{{- define "db-backup-controller.removedEngines" -}}
{{- $removed := list }}
{{- range $name, $e := .Values.engines }}
{{- if not $e.enabled }}
{{- $removed = append $removed $name }}
{{- end }}
{{- end }}
{{- toJson $removed }}
{{- end }}

{{/* The names of the engines the chart ships, for messages. */}}
{{- define "db-backup-controller.shippedEngineNames" -}}
{{- $names := list }}
{{- range $path, $_ := .Files.Glob "engines/*.json" }}
{{- $names = append $names ($path | base | trimSuffix ".json") }}
{{- end }}
{{- join ", " $names }}
{{- end }}

{{/*
The controller's settings file (controller/settings.ts): runner images per
engine and version, the shipped engines to install, the runner defaults, the reconcile loop, the metrics port
and leader election. An engine without versions gets no images (its
DatabaseBackups report RunnerImageNotFound).
*/}}
{{- define "db-backup-controller.settings" -}}
{{- $runnerImages := dict }}
{{- range $engine := list "postgresql" "mysql" }}
{{- $e := index $.Values.runner $engine }}
{{- if $e.versions }}
{{- if not (has $e.defaultVersion $e.versions) }}
{{- fail (printf "runner.%s.defaultVersion %q is not one of runner.%s.versions (%s)" $engine $e.defaultVersion $engine (join ", " $e.versions)) }}
{{- end }}
{{- $images := dict }}
{{- range $version := $e.versions }}
{{- $_ := set $images $version (include "db-backup-controller.runnerImage" (dict "root" $ "engine" $engine "version" $version)) }}
{{- end }}
{{- $_ := set $runnerImages $engine (dict "defaultVersion" $e.defaultVersion "images" $images) }}
{{- end }}
{{- end }}
{{- $le := .Values.leaderElection }}
{{- $settings := dict
  "namespace" .Release.Namespace
  "runnerImages" $runnerImages
  "allowedRunnerImagePrefixes" .Values.runner.allowedImagePrefixes
  "engines" (include "db-backup-controller.engines" . | fromJson)
  "removedEngines" (include "db-backup-controller.removedEngines" . | fromJsonArray)
  "imagePullPolicy" .Values.runner.image.pullPolicy
  "runnerResources" .Values.runner.resources
  "workers" .Values.controller.workers
  "resyncPeriod" .Values.controller.resyncPeriod
  "metricsPort" .Values.controller.metricsPort
  "leaderElection" (dict
    "enabled" (eq (include "db-backup-controller.leaderElection" .) "true")
    "leaseName" (include "db-backup-controller.fullname" .)
    "leaseDuration" $le.leaseDuration
    "renewDeadline" $le.renewDeadline
    "retryPeriod" $le.retryPeriod)
  "liveness" (dict "watchFailureTimeout" .Values.controller.watchFailureTimeout) }}
{{- toYaml $settings }}
{{- end }}
