{{/*
Helpers of the monitoring templates (ServiceMonitors, PrometheusRule, Grafana
dashboard). Names and labels come from _helpers.tpl.
*/}}

{{/*
A Prometheus duration (26h, 1d12h, 90m, 500ms) in whole seconds, for PromQL,
which compares numbers: y = 365d and w = 7d as in Prometheus.
Call with (dict "value" .Values.x "key" "monitoring.x") for the error message.
*/}}
{{- define "dbbc-monitoring.seconds" -}}
{{- $d := toString .value }}
{{- if not (regexMatch "^([0-9]+(ms|[ywdhms]))+$" $d) }}
{{- fail (printf "%s: %q is not a duration such as 26h, 1d12h or 90m" .key $d) }}
{{- end }}
{{- $unit := dict "y" 31536000 "w" 604800 "d" 86400 "h" 3600 "m" 60 "s" 1 }}
{{- $seconds := 0 }}
{{- range $part := regexFindAll "[0-9]+(ms|[ywdhms])" $d -1 }}
{{- $n := regexFind "^[0-9]+" $part | int64 }}
{{- $u := regexReplaceAll "^[0-9]+" $part "" }}
{{- if eq $u "ms" }}
{{- $seconds = add $seconds (div $n 1000) }}
{{- else }}
{{- $seconds = add $seconds (mul $n (get $unit $u)) }}
{{- end }}
{{- end }}
{{- $seconds }}
{{- end }}

{{/*
Labels of the monitoring objects: the release's labels and the component,
then the extra labels given (a map; they do not replace the chart's own).
Call with (dict "root" $ "extra" .Values.monitoring.x.labels).
*/}}
{{- define "dbbc-monitoring.labels" -}}
{{- $labels := fromYaml (include "db-backup-controller.labels" .root) }}
{{- $_ := set $labels "app.kubernetes.io/component" "monitoring" }}
{{- toYaml (merge $labels (.extra | default dict)) }}
{{- end }}
