{{/* The chart's name: also the app.kubernetes.io/name label, which is the scrape job's name. */}}
{{- define "lenses-hq-exporter.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* The objects' name: the release's, with the chart's unless it already holds it. */}}
{{- define "lenses-hq-exporter.fullname" -}}
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

{{- define "lenses-hq-exporter.namespace" -}}
{{- .Release.Namespace }}
{{- end }}

{{- define "lenses-hq-exporter.selectorLabels" -}}
app.kubernetes.io/name: {{ include "lenses-hq-exporter.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "lenses-hq-exporter.labels" -}}
{{ include "lenses-hq-exporter.selectorLabels" . }}
app.kubernetes.io/part-of: lenses-hq-exporter
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
{{- end }}

{{- define "lenses-hq-exporter.image" -}}
{{- if .Values.image.digest }}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest }}
{{- else }}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) }}
{{- end }}
{{- end }}

{{/* The Secret mounted as the exporter's secret files: the user's, or the chart's own. */}}
{{- define "lenses-hq-exporter.secretName" -}}
{{- if .Values.existingSecret.name }}
{{- .Values.existingSecret.name }}
{{- else if .Values.secrets }}
{{- include "lenses-hq-exporter.fullname" . }}
{{- end }}
{{- end }}

{{- define "lenses-hq-exporter.webConfigSecretName" -}}
{{- default (printf "%s-web-config" (include "lenses-hq-exporter.fullname" .)) .Values.webConfig.existingSecret }}
{{- end }}

{{/* Whether the listener speaks TLS (as far as the chart can tell from webConfig.config). */}}
{{- define "lenses-hq-exporter.tls" -}}
{{- if and .Values.webConfig.enabled (hasKey .Values.webConfig.config "tls_server_config") }}true{{ end }}
{{- end }}

{{/* The exec probe used when a web-config file is on (TLS or basic auth): the healthcheck command. */}}
{{- define "lenses-hq-exporter.healthcheck" -}}
- lenses-hq-exporter
- healthcheck
- --web.listen-address=127.0.0.1:{{ .Values.port }}
- --web.config.file=/etc/lenses-hq-exporter/web/web.yml
{{- end }}

{{- define "lenses-hq-exporter.checksum" -}}
checksum/config: {{ toYaml .Values.config | sha256sum }}
{{- if .Values.secrets }}
checksum/secrets: {{ toYaml .Values.secrets | sha256sum }}
{{- end }}
{{- if and .Values.webConfig.enabled (not .Values.webConfig.existingSecret) }}
checksum/web-config: {{ toYaml .Values.webConfig.config | sha256sum }}
{{- end }}
{{- end }}

{{/* The pod template shared by the Deployment (ha) and the StatefulSet (sharded). */}}
{{- define "lenses-hq-exporter.podTemplate" -}}
metadata:
  labels:
    {{- include "lenses-hq-exporter.labels" . | nindent 4 }}
    {{- with .Values.podLabels }}
    {{- toYaml . | nindent 4 }}
    {{- end }}
  annotations:
    {{- include "lenses-hq-exporter.checksum" . | nindent 4 }}
    {{- with .Values.podAnnotations }}
    {{- toYaml . | nindent 4 }}
    {{- end }}
spec:
  automountServiceAccountToken: false
  enableServiceLinks: false
  # The exporter stops within a few seconds of SIGTERM.
  terminationGracePeriodSeconds: 15
  {{- with .Values.imagePullSecrets }}
  imagePullSecrets:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  {{- with .Values.priorityClassName }}
  priorityClassName: {{ . }}
  {{- end }}
  securityContext:
    runAsNonRoot: true
    runAsUser: 65532
    runAsGroup: 65532
    fsGroup: 65532
    seccompProfile:
      type: RuntimeDefault
  affinity:
    {{- if .Values.affinity }}
    {{- toYaml .Values.affinity | nindent 4 }}
    {{- else }}
    podAntiAffinity:
      preferredDuringSchedulingIgnoredDuringExecution:
        - weight: 100
          podAffinityTerm:
            topologyKey: kubernetes.io/hostname
            labelSelector:
              matchLabels:
                {{- include "lenses-hq-exporter.selectorLabels" . | nindent 16 }}
    {{- end }}
  {{- with .Values.nodeSelector }}
  nodeSelector:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  {{- with .Values.tolerations }}
  tolerations:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  {{- with .Values.topologySpreadConstraints }}
  topologySpreadConstraints:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  containers:
    - name: exporter
      image: {{ include "lenses-hq-exporter.image" . }}
      imagePullPolicy: {{ .Values.image.pullPolicy }}
      {{- if or (eq .Values.mode "sharded") .Values.extraEnv }}
      env:
        {{- if eq .Values.mode "sharded" }}
        # The StatefulSet's ordinal of this pod: 0 .. replicas-1.
        - name: SHARD
          valueFrom:
            fieldRef:
              fieldPath: metadata.labels['apps.kubernetes.io/pod-index']
        {{- end }}
        {{- with .Values.extraEnv }}
        {{- toYaml . | nindent 8 }}
        {{- end }}
      {{- end }}
      args:
        - run
        - --config.file=/etc/lenses-hq-exporter/config/config.yml
        - --web.listen-address=:{{ .Values.port }}
        {{- if .Values.webConfig.enabled }}
        - --web.config.file=/etc/lenses-hq-exporter/web/web.yml
        {{- end }}
        {{- if eq .Values.mode "sharded" }}
        - --shard=$(SHARD)
        - --total-shards={{ .Values.replicas }}
        {{- end }}
        {{- with .Values.extraArgs }}
        {{- toYaml . | nindent 8 }}
        {{- end }}
      ports:
        - name: metrics
          containerPort: {{ .Values.port }}
          protocol: TCP
      {{- if .Values.webConfig.enabled }}
      startupProbe:
        exec:
          command:
            {{- include "lenses-hq-exporter.healthcheck" . | nindent 12 }}
        periodSeconds: 2
        timeoutSeconds: 5
        failureThreshold: 15
      livenessProbe:
        exec:
          command:
            {{- include "lenses-hq-exporter.healthcheck" . | nindent 12 }}
        periodSeconds: 10
        timeoutSeconds: 5
        failureThreshold: 3
      readinessProbe:
        # 200 once every target finished its first sync (successful or not).
        exec:
          command:
            {{- include "lenses-hq-exporter.healthcheck" . | nindent 12 }}
            - --ready
            {{- if and .Values.webConfig.probe.username .Values.webConfig.probe.passwordKey }}
            - --basic-auth.username={{ .Values.webConfig.probe.username }}
            - --basic-auth.password-file=/etc/lenses-hq-exporter/web/{{ .Values.webConfig.probe.passwordKey }}
            {{- end }}
        periodSeconds: 5
        timeoutSeconds: 5
        failureThreshold: 2
      {{- else }}
      startupProbe:
        httpGet:
          path: /healthz
          port: metrics
        periodSeconds: 2
        failureThreshold: 15
      livenessProbe:
        httpGet:
          path: /healthz
          port: metrics
        periodSeconds: 10
        timeoutSeconds: 3
        failureThreshold: 3
      readinessProbe:
        # 200 once every target finished its first sync (successful or not).
        httpGet:
          path: /readyz
          port: metrics
        periodSeconds: 5
        timeoutSeconds: 3
        failureThreshold: 2
      {{- end }}
      resources:
        {{- toYaml .Values.resources | nindent 8 }}
      securityContext:
        runAsNonRoot: true
        allowPrivilegeEscalation: false
        readOnlyRootFilesystem: true
        privileged: false
        capabilities:
          drop:
            - ALL
      volumeMounts:
        - name: config
          mountPath: /etc/lenses-hq-exporter/config
          readOnly: true
        {{- if include "lenses-hq-exporter.secretName" . }}
        - name: secrets
          mountPath: /etc/lenses-hq-exporter/secrets
          readOnly: true
        {{- end }}
        {{- if .Values.webConfig.enabled }}
        - name: web-config
          mountPath: /etc/lenses-hq-exporter/web
          readOnly: true
        {{- end }}
        - name: tmp
          mountPath: /tmp
        {{- with .Values.extraVolumeMounts }}
        {{- toYaml . | nindent 8 }}
        {{- end }}
  volumes:
    - name: config
      configMap:
        name: {{ include "lenses-hq-exporter.fullname" . }}-config
    {{- with include "lenses-hq-exporter.secretName" . }}
    # Whole-directory mounts (no subPath), so that a rotated Secret reaches the files the exporter re-reads.
    - name: secrets
      secret:
        secretName: {{ . }}
        defaultMode: 0440
        {{- if and $.Values.existingSecret.name $.Values.existingSecret.items }}
        items:
          {{- range $path, $key := $.Values.existingSecret.items }}
          - key: {{ $key }}
            path: {{ $path }}
          {{- end }}
        {{- end }}
    {{- end }}
    {{- if .Values.webConfig.enabled }}
    - name: web-config
      secret:
        secretName: {{ include "lenses-hq-exporter.webConfigSecretName" . }}
        defaultMode: 0440
    {{- end }}
    - name: tmp
      emptyDir:
        medium: Memory
        sizeLimit: 16Mi
    {{- with .Values.extraVolumes }}
    {{- toYaml . | nindent 4 }}
    {{- end }}
{{- end }}
