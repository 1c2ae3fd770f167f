{{/*
The chart's name, or nameOverride.
*/}}
{{- define "spinegate.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
The full name of the release's objects: fullnameOverride, else release-chart (the release name
alone when it already contains the chart name). 63 characters at most (DNS label).
*/}}
{{- define "spinegate.fullname" -}}
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

{{/*
chart-version, for the helm.sh/chart label.
*/}}
{{- define "spinegate.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
Labels every object carries.
*/}}
{{- define "spinegate.labels" -}}
helm.sh/chart: {{ include "spinegate.chart" . }}
{{ include "spinegate.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: spinegate
{{- end }}

{{/*
Labels that select the gateway's pods (immutable in a Deployment: never add to them).
*/}}
{{- define "spinegate.selectorLabels" -}}
app.kubernetes.io/name: {{ include "spinegate.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{/*
The service account the pods run as.
*/}}
{{- define "spinegate.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "spinegate.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{/*
The image reference: repository@digest when a digest is given, else repository:tag (the chart's
appVersion by default).
*/}}
{{- define "spinegate.image" -}}
{{- if .Values.image.digest }}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest }}
{{- else }}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) }}
{{- end }}
{{- end }}

{{/*
The configuration text: the `config` value, else the chart's files/spinegate.toml.
*/}}
{{- define "spinegate.config" -}}
{{- $text := default (.Files.Get "files/spinegate.toml") .Values.config }}
{{- if not $text }}
{{- fail "no configuration: set `config` or ship files/spinegate.toml in the chart" }}
{{- end }}
{{- $text }}
{{- end }}

{{/*
Where the configuration directory is mounted and the file in it; the image's CMD names the same
path.
*/}}
{{- define "spinegate.configDir" -}}
/etc/spinegate
{{- end }}
