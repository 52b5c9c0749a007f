{{/* The scrape job of the release's pods: the ServiceMonitor sets it, the PrometheusRule's
     selectors name it. For release "modelmedic" it is "modelmedic", the job of
     deploy/prometheus/prometheus.yml, so files/alerts.yml works unchanged there. */}}
{{- define "modelmedic.job" -}}
{{ include "modelmedic.fullname" . }}
{{- end }}

{{/* The label of the one Service the ServiceMonitor selects (the headless one: every pod, ready
     or not). The other Service carries the selector labels too: selecting on those alone
     scraped each pod twice. */}}
{{- define "modelmedic.scrapeLabel" -}}
modelmedic.io/scrape: "true"
{{- end }}

{{/* files/alerts.yml (also deploy/prometheus/alerts.yml) as this release's rule groups: every
     job="modelmedic" becomes this release's job, the runbook links prometheusRule.runbookBaseUrl. */}}
{{- define "modelmedic.alertRules" -}}
{{- $rules := .Files.Get "files/alerts.yml" }}
{{- $rules = replace "job=\"modelmedic\"" (printf "job=%q" (include "modelmedic.job" .)) $rules }}
{{- $rules = replace "https://example.invalid/modelmedic/docs/operations.md" .Values.prometheusRule.runbookBaseUrl $rules }}
{{- toYaml (fromYaml $rules) }}
{{- end }}
