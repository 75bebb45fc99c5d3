{{/* Names, labels and the pieces every hubsync pod shares. */}}

{{- define "hubsync.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "hubsync.fullname" -}}
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

{{- define "hubsync.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
{{ include "hubsync.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end }}

{{- define "hubsync.selectorLabels" -}}
app.kubernetes.io/name: {{ include "hubsync.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "hubsync.image" -}}
{{- if .Values.image.digest }}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest }}
{{- else }}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) }}
{{- end }}
{{- end }}

{{- define "hubsync.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "hubsync.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{/* The Secret the pods read: an existing one, or the chart's. */}}
{{- define "hubsync.secretName" -}}
{{- default (include "hubsync.fullname" .) .Values.secrets.existingSecret }}
{{- end }}

{{/* Secret values the chart creates, keyed by variable name; empty ones left out. */}}
{{- define "hubsync.secretData" -}}
{{- $s := .Values.secrets -}}
{{- $all := dict "HUBSYNC_DATABASE_URL" $s.databaseUrl "WARP_DATABASE_URL" $s.warpDatabaseUrl "HUBSPOT_ACCESS_TOKEN" $s.hubspotAccessToken "HUBSPOT_CLIENT_SECRET" $s.hubspotClientSecret "HUBSYNC_API_TOKENS" $s.apiTokens "HUBSYNC_ADMIN_PASSWORD" $s.adminPassword "HUBSYNC_SECRET_KEY" $s.secretKey "HUBSYNC_REPORT_WEBHOOK_URL" $s.reportWebhookUrl "HUBSYNC_REPORT_SMTP_URL" $s.reportSmtpUrl -}}
{{- range $key := keys $all | sortAlpha }}
{{- $value := get $all $key }}
{{- if $value }}
{{ $key }}: {{ $value | b64enc | quote }}
{{- end }}
{{- end }}
{{- end }}

{{/* Rolls the pods when the configuration or the chart's Secret changes. */}}
{{- define "hubsync.checksums" -}}
checksum/config: {{ include (print $.Template.BasePath "/configmap.yaml") . | sha256sum }}
{{- if not .Values.secrets.existingSecret }}
checksum/secret: {{ include "hubsync.secretData" . | sha256sum }}
{{- end }}
{{- end }}

{{/* The container's security context, shared by every hubsync container. */}}
{{- define "hubsync.containerSecurity" -}}
securityContext:
  {{- toYaml .Values.securityContext | nindent 2 }}
{{- end }}

{{/*
A hubsync pod spec. Arguments: (dict "root" $ "component" "web"|"worker"
"settings" .Values.web|.Values.worker "worker" "true"|"false").
*/}}
{{- define "hubsync.podSpec" -}}
{{- $root := .root -}}
{{- $v := $root.Values -}}
{{- $component := .component -}}
serviceAccountName: {{ include "hubsync.serviceAccountName" $root }}
automountServiceAccountToken: false
terminationGracePeriodSeconds: {{ $v.terminationGracePeriodSeconds }}
securityContext:
  {{- toYaml $v.podSecurityContext | nindent 2 }}
{{- with $v.imagePullSecrets }}
imagePullSecrets:
  {{- range . }}
  - name: {{ . }}
  {{- end }}
{{- end }}
{{- if $v.topologySpread.enabled }}
topologySpreadConstraints:
  {{- range $key := list "topology.kubernetes.io/zone" "kubernetes.io/hostname" }}
  - maxSkew: {{ $v.topologySpread.maxSkew }}
    topologyKey: {{ $key }}
    whenUnsatisfiable: ScheduleAnyway
    labelSelector:
      matchLabels:
        {{- include "hubsync.selectorLabels" $root | nindent 8 }}
        app.kubernetes.io/component: {{ $component }}
  {{- end }}
{{- end }}
{{- with .settings.nodeSelector }}
nodeSelector:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .settings.tolerations }}
tolerations:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .settings.affinity }}
affinity:
  {{- toYaml . | nindent 2 }}
{{- end }}
containers:
  - name: hubsync
    image: {{ include "hubsync.image" $root }}
    imagePullPolicy: {{ $v.image.pullPolicy }}
    args:
      - serve
      - --host=0.0.0.0
      - --port=8000
      - --workers={{ .settings.processes }}
      - --no-migrate
    ports:
      - name: http
        containerPort: 8000
        protocol: TCP
      {{- if $v.metrics.port }}
      - name: metrics
        containerPort: {{ $v.metrics.port }}
        protocol: TCP
      {{- end }}
    envFrom:
      - configMapRef:
          name: {{ include "hubsync.fullname" $root }}
      - secretRef:
          name: {{ include "hubsync.secretName" $root }}
    env:
      - name: HUBSYNC_WORKER
        value: {{ .worker | quote }}
      - name: HUBSYNC_SCHEDULER
        value: {{ .worker | quote }}
      {{- with $v.extraEnv }}
      {{- toYaml . | nindent 6 }}
      {{- end }}
    readinessProbe:
      httpGet:
        path: /readyz
        port: http
      periodSeconds: {{ $v.probes.readiness.periodSeconds }}
      timeoutSeconds: {{ $v.probes.readiness.timeoutSeconds }}
      failureThreshold: {{ $v.probes.readiness.failureThreshold }}
    livenessProbe:
      httpGet:
        path: /healthz
        port: http
      periodSeconds: {{ $v.probes.liveness.periodSeconds }}
      timeoutSeconds: {{ $v.probes.liveness.timeoutSeconds }}
      failureThreshold: {{ $v.probes.liveness.failureThreshold }}
    startupProbe:
      httpGet:
        path: /healthz
        port: http
      periodSeconds: {{ $v.probes.startup.periodSeconds }}
      failureThreshold: {{ $v.probes.startup.failureThreshold }}
    lifecycle:
      preStop:
        sleep:
          seconds: {{ $v.preStopSleepSeconds }}
    resources:
      {{- toYaml .settings.resources | nindent 6 }}
    {{- include "hubsync.containerSecurity" $root | nindent 4 }}
    volumeMounts:
      - name: tmp
        mountPath: /tmp
volumes:
  # The only writable place (the root filesystem is read-only): Python's temporary files and
  # the per-process metrics files of `--workers N`.
  - name: tmp
    emptyDir:
      sizeLimit: 64Mi
{{- end }}

{{/* The named port Prometheus scrapes. */}}
{{- define "hubsync.metricsPortName" -}}
{{- if .Values.metrics.port }}metrics{{ else }}http{{ end }}
{{- end }}

{{/*
The alert rules, shared by the PrometheusRule and by `promtool` in the chart's tests.
*/}}
{{- define "hubsync.alertRules" -}}
{{- $rule := .Values.metrics.prometheusRule -}}
- alert: HubsyncScheduledJobLate
  expr: max by (exported_job) (hubsync_scheduled_job_late) == 1
  for: 5m
  labels:
    severity: warning
  annotations:
    summary: "hubsync's scheduled job {{ "{{" }} $labels.exported_job {{ "}}" }} has not succeeded within twice its period"
    runbook: "README, Alerts: HubsyncScheduledJobLate"
- alert: HubsyncQueueWaiting
  expr: max(hubsync_queue_oldest_waiting_seconds) > {{ $rule.oldestWaitingSeconds }}
  for: 5m
  labels:
    severity: warning
  annotations:
    summary: "the oldest waiting sync job has waited {{ "{{" }} $value | humanizeDuration {{ "}}" }}"
    runbook: "README, Alerts: HubsyncQueueWaiting"
- alert: HubsyncJobsFailing
  expr: sum(increase(hubsync_jobs_finished_total{outcome="failed"}[15m])) > {{ $rule.failedJobs }}
  labels:
    severity: warning
  annotations:
    summary: "{{ "{{" }} $value {{ "}}" }} sync jobs failed for good in 15 minutes"
    runbook: "README, Alerts: HubsyncJobsFailing"
- alert: HubsyncWebhookEventsFailing
  expr: max(hubsync_webhook_events_failed) - max(hubsync_webhook_events_failed offset 15m) > {{ $rule.failedWebhookEvents }}
  labels:
    severity: warning
  annotations:
    summary: "failed webhook events rose by {{ "{{" }} $value {{ "}}" }} in 15 minutes"
    runbook: "README, Alerts: HubsyncWebhookEventsFailing"
- alert: HubsyncHubSpotRateLimited
  expr: sum(increase(hubsync_hubspot_rate_limited_total[10m])) > {{ $rule.rateLimited }}
  labels:
    severity: warning
  annotations:
    summary: "HubSpot answered 429 {{ "{{" }} $value {{ "}}" }} times in 10 minutes"
    runbook: "README, Alerts: HubsyncHubSpotRateLimited"
- alert: HubsyncReconciliationLate
  expr: time() - max(hubsync_reconciliation_last_success_timestamp_seconds) > 26 * 3600
  for: 10m
  labels:
    severity: warning
  annotations:
    summary: "no reconciliation run has succeeded for 26 hours"
    runbook: "README, Alerts: HubsyncReconciliationLate"
- alert: HubsyncDatabaseDown
  expr: max(hubsync_database_up) == 0
  for: 2m
  labels:
    severity: critical
  annotations:
    summary: "hubsync cannot read its database"
    runbook: "README, Alerts: HubsyncDatabaseDown"
{{- end -}}
