{{/*
Names and labels of the points-mesh chart.

Roster objects keep the names of the SPEC (c-server-akmal, python-server-akmal, client-akmal),
so clients and people reach a server by its plain DNS name; the release's own objects (database,
secret, policies) are prefixed with the release name. Two releases therefore need two namespaces.
*/}}

{{- define "points-mesh.name" -}}
{{- .Chart.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/* Prefix of the release's own objects: "<release>" ("points" -> points-database). */}}
{{- define "points-mesh.fullname" -}}
{{- .Release.Name | trunc 40 | trimSuffix "-" -}}
{{- end -}}

{{- define "points-mesh.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/* Selector labels common to every pod of the release. */}}
{{- define "points-mesh.selectorLabels" -}}
app.kubernetes.io/name: {{ include "points-mesh.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "points-mesh.labels" -}}
helm.sh/chart: {{ include "points-mesh.chart" . }}
{{ include "points-mesh.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: points-mesh
{{- end -}}

{{/*
The servers of the roster, as a list of dicts: member, language (c|python), name, client
container, row, port, image key. Call: include "points-mesh.servers" . | fromYamlArray
*/}}
{{- define "points-mesh.servers" -}}
{{- range .Values.members }}
- member: {{ .name }}
  language: c
  name: c-server-{{ .name }}
  client: c-client
  row: c_user-{{ .name }}
  port: {{ .cPort }}
  image: cServer
  clientImage: cClient
- member: {{ .name }}
  language: python
  name: python-server-{{ .name }}
  client: python-client
  row: python_user-{{ .name }}
  port: {{ .pythonPort }}
  image: pythonServer
  clientImage: pythonClient
{{- end }}
{{- end -}}

{{/* Labels of one server's pods. Param: dict "root" $ "server" $server */}}
{{- define "points-mesh.serverSelectorLabels" -}}
{{ include "points-mesh.selectorLabels" .root }}
app.kubernetes.io/component: server
points-mesh.io/server: {{ .server.name }}
{{- end -}}

{{- define "points-mesh.serverLabels" -}}
{{ include "points-mesh.labels" .root }}
app.kubernetes.io/component: server
points-mesh.io/server: {{ .server.name }}
points-mesh.io/member: {{ .server.member }}
points-mesh.io/language: {{ .server.language }}
{{- end -}}

{{/* The registry prefix ("" or "host[:port][/path]/"): global.imageRegistry (a parent chart's,
for every image) wins over REGISTRY. Param: dict "root" $ "registry" "..." */}}
{{- define "points-mesh.registry" -}}
{{- $global := dig "imageRegistry" "" (.root.Values.global | default dict) -}}
{{- if $global -}}{{ trimSuffix "/" $global }}/{{- else -}}{{ .registry }}{{- end -}}
{{- end -}}

{{/* An image reference: registry, repository, tag, and the digest when one is given (then the
runtime pulls exactly that). Param: dict "root" $ "key" "cServer" */}}
{{- define "points-mesh.image" -}}
{{- $img := .root.Values.image -}}
{{- $ref := printf "%s%s:%s" (include "points-mesh.registry" (dict "root" .root "registry" $img.registry)) (index $img .key) (default .root.Chart.AppVersion $img.tag) -}}
{{- with index ($img.digests | default dict) .key }}{{ printf "%s@%s" $ref . }}{{ else }}{{ $ref }}{{ end -}}
{{- end -}}

{{/* The database's image, the same way (database.image.registry and .digest). */}}
{{- define "points-mesh.database.image" -}}
{{- $img := .Values.database.image -}}
{{- $ref := printf "%s%s:%s" (include "points-mesh.registry" (dict "root" . "registry" ($img.registry | default ""))) $img.repository $img.tag -}}
{{- with $img.digest }}{{ printf "%s@%s" $ref . }}{{ else }}{{ $ref }}{{ end -}}
{{- end -}}

{{- define "points-mesh.imagePullSecrets" -}}
{{- with .Values.image.pullSecrets -}}
imagePullSecrets:
{{- range . }}
  - name: {{ . }}
{{- end }}
{{- end }}
{{- end -}}

{{/* The database: host, port, names, and the Secret holding the app account's password. */}}
{{- define "points-mesh.database.fullname" -}}
{{- printf "%s-database" (include "points-mesh.fullname" .) -}}
{{- end -}}

{{- define "points-mesh.database.host" -}}
{{- if .Values.database.enabled -}}
{{- include "points-mesh.database.fullname" . -}}
{{- else -}}
{{- required "externalDatabase.host is required when database.enabled=false" .Values.externalDatabase.host -}}
{{- end -}}
{{- end -}}

{{- define "points-mesh.database.port" -}}
{{- if .Values.database.enabled }}{{ .Values.database.port }}{{ else }}{{ .Values.externalDatabase.port }}{{ end -}}
{{- end -}}

{{/* DB_NAME. The chart's own database is made by files/sql/01-schema.sql (a copy of sql/):
the name is read from there, its one definition, so no value can disagree with it. */}}
{{- define "points-mesh.database.name" -}}
{{- if .Values.database.enabled -}}
{{- $create := regexFind "CREATE DATABASE IF NOT EXISTS [A-Za-z0-9_]+" (.Files.Get "files/sql/01-schema.sql") -}}
{{- trimPrefix "CREATE DATABASE IF NOT EXISTS " $create | required "files/sql/01-schema.sql creates no database" -}}
{{- else -}}
{{- required "externalDatabase.name is required when database.enabled=false" .Values.externalDatabase.name -}}
{{- end -}}
{{- end -}}

{{- define "points-mesh.database.username" -}}
{{- if .Values.database.enabled }}{{ .Values.database.username }}{{ else }}{{ .Values.externalDatabase.username }}{{ end -}}
{{- end -}}

{{- define "points-mesh.database.secretName" -}}
{{- if .Values.database.enabled -}}
{{- default (include "points-mesh.database.fullname" .) .Values.database.existingSecret -}}
{{- else -}}
{{- default (include "points-mesh.database.fullname" .) .Values.externalDatabase.existingSecret -}}
{{- end -}}
{{- end -}}

{{- define "points-mesh.database.secretPasswordKey" -}}
{{- if .Values.database.enabled -}}
mysql-password
{{- else if .Values.externalDatabase.existingSecret -}}
{{- .Values.externalDatabase.existingSecretPasswordKey -}}
{{- else -}}
mysql-password
{{- end -}}
{{- end -}}

{{/* Does the chart make the Secret itself? */}}
{{- define "points-mesh.database.createSecret" -}}
{{- if .Values.database.enabled -}}
{{- if not .Values.database.existingSecret }}true{{ end -}}
{{- else if not .Values.externalDatabase.existingSecret -}}
true
{{- end -}}
{{- end -}}

{{/*
A password of the chart's database, base64: the value given (database.auth: the same on every
render), else the one already in the live Secret (lookup, so it survives upgrades), else a new
random one. Under `helm template` and --dry-run lookup returns nothing, so a new one is shown.
Param: dict "root" $ "key" "mysql-password"
*/}}
{{- define "points-mesh.database.password" -}}
{{- $given := get .root.Values.database.auth (ternary "rootPassword" "password" (eq .key "mysql-root-password")) -}}
{{- $name := include "points-mesh.database.secretName" .root -}}
{{- $live := lookup "v1" "Secret" .root.Release.Namespace $name -}}
{{- if $given -}}
{{- $given | b64enc -}}
{{- else if and $live $live.data (hasKey $live.data .key) -}}
{{- index $live.data .key -}}
{{- else -}}
{{- randAlphaNum 24 | b64enc -}}
{{- end -}}
{{- end -}}

{{/* Pod security context shared by the servers, clients and test pod. */}}
{{- define "points-mesh.podSecurityContext" -}}
{{- toYaml .Values.podSecurityContext -}}
{{- end -}}

{{- define "points-mesh.containerSecurityContext" -}}
{{- toYaml .Values.containerSecurityContext -}}
{{- end -}}

{{/*
TLS (values tls.*): where the certificate comes from, resolved ("cert-manager", "chart" or
"existingSecret"; "" when TLS is off), and the Secret holding tls.crt, tls.key and ca.crt.
*/}}
{{- define "points-mesh.tls.source" -}}
{{- if .Values.tls.enabled -}}
{{- .Values.tls.source -}}
{{- end -}}
{{- end -}}

{{- define "points-mesh.tls.secretName" -}}
{{- if eq (include "points-mesh.tls.source" .) "existingSecret" -}}
{{- .Values.tls.existingSecret -}}
{{- else -}}
{{- printf "%s-tls" (include "points-mesh.fullname" .) -}}
{{- end -}}
{{- end -}}

{{/* Every DNS name of every server Service (the server certificate's names). */}}
{{- define "points-mesh.tls.dnsNames" -}}
{{- $ns := .Release.Namespace -}}
{{- range $server := include "points-mesh.servers" . | fromYamlArray }}
- {{ $server.name }}
- {{ $server.name }}.{{ $ns }}
- {{ $server.name }}.{{ $ns }}.svc
- {{ $server.name }}.{{ $ns }}.svc.cluster.local
{{- end }}
{{- end -}}

{{/* Where the TLS files are mounted in server, client and test containers. */}}
{{- define "points-mesh.tls.dir" -}}/run/secrets/points-tls{{- end -}}

{{/* Environment of a client container. Param: dict "root" $ "server" $server */}}
{{- define "points-mesh.clientEnv" -}}
- name: TARGET_HOST
  value: {{ .server.name | quote }}
- name: TARGET_PORT
  value: {{ .server.port | quote }}
- name: CLIENT_RETRIES
  value: {{ .root.Values.clients.retries | quote }}
- name: CLIENT_RETRY_DELAY
  value: {{ .root.Values.clients.retryDelay | quote }}
- name: CLIENT_RETRY_MAX_DELAY
  value: {{ .root.Values.clients.retryMaxDelay | quote }}
- name: CLIENT_TIMEOUT
  value: {{ .root.Values.clients.timeout | quote }}
{{- if .root.Values.tls.enabled }}
- name: TLS_CA_FILE
  value: {{ include "points-mesh.tls.dir" .root }}/ca.crt
{{- end }}
{{- end -}}

{{/* The CA volume of a client pod (TLS on); its mount: "points-mesh.tls.caMount". */}}
{{- define "points-mesh.tls.caVolume" -}}
- name: tls-ca
  secret:
    secretName: {{ include "points-mesh.tls.secretName" . }}
    defaultMode: 0444
    items:
      - key: ca.crt
        path: ca.crt
{{- end -}}

{{- define "points-mesh.tls.caMount" -}}
- name: tls-ca
  mountPath: {{ include "points-mesh.tls.dir" . }}
  readOnly: true
{{- end -}}

{{/*
The seed rows of .Values.members: the same SQL, byte for byte, as sql/02-seed.sql, which
`make render` writes from roster.yaml (tests/chart checks that the two agree).
*/}}
{{- define "points-mesh.seedSql" -}}
-- Seed rows: two per roster member, idempotent (an existing row keeps its points).
-- Rendered from the roster by `make render` (sql/02-seed.sql) and by the Helm chart (its
-- database init ConfigMap, from .Values.members). Do not edit.
-- Stamped in the servers' session time zone (DB_TIMEZONE).
SET time_zone = '{{ .Values.servers.timezone }}';
USE project_db;

{{ range .Values.members -}}
INSERT INTO users (user, points, datetime_stamp) VALUES ('c_user-{{ .name }}', 0, NOW()) ON DUPLICATE KEY UPDATE user = user;
INSERT INTO users (user, points, datetime_stamp) VALUES ('python_user-{{ .name }}', 0, NOW()) ON DUPLICATE KEY UPDATE user = user;
{{ end -}}
{{- end -}}

{{/*
Checks the schema cannot express: the database's connections enough for the roster, member
names and ports unique, no server port equal to HEALTH_PORT (both listen in the same pod). Included by servers.yaml; renders nothing.
*/}}
{{- define "points-mesh.validate" -}}
{{- if .Values.database.enabled -}}
{{- $_ := include "points-mesh.database.maxConnections" . -}}
{{- range .Values.database.extraArgs -}}
{{- if regexMatch "^--max[-_]connections" (toString .) -}}
{{- fail (printf "database.extraArgs: %q would override the max_connections the chart sizes from the roster; set database.maxConnections instead (checked against the roster)" (toString .)) -}}
{{- end -}}
{{- end -}}
{{- end -}}
{{- include "points-mesh.database.checkExternal" . -}}
{{- $names := dict -}}
{{- $ports := dict -}}
{{- range .Values.members -}}
{{- if hasKey $names .name -}}
{{- fail (printf "members: the name %q appears twice" .name) -}}
{{- end -}}
{{- $_ := set $names .name true -}}
{{- range $p := list .cPort .pythonPort -}}
{{- if hasKey $ports (toString $p) -}}
{{- fail (printf "members: port %v is used twice" $p) -}}
{{- end -}}
{{- if eq (int $p) (int $.Values.servers.healthPort) -}}
{{- fail (printf "members: port %v is servers.healthPort, which every server pod also listens on" $p) -}}
{{- end -}}
{{- $_ := set $ports (toString $p) true -}}
{{- end -}}
{{- end -}}
{{- /* One release per namespace: the roster's Service names (c-server-<member>) are fixed, so a
second release would fight the first over them. Said here, with both names, instead of Helm's
"invalid ownership metadata" on the first object. (Under helm template lookup finds nothing.) */ -}}
{{- range .Values.members -}}
{{- $svc := lookup "v1" "Service" $.Release.Namespace (printf "c-server-%s" .name) -}}
{{- $owner := dig "metadata" "annotations" "meta.helm.sh/release-name" "" $svc -}}
{{- if and $owner (ne $owner $.Release.Name) -}}
{{- fail (printf "namespace %s already holds release %q (Service c-server-%s is its): the chart runs one release per namespace, since its Service names are the roster's; install %q into another namespace" $.Release.Namespace $owner .name $.Release.Name) -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{/*
Database sessions the servers hold at most: two per server pod (its reader's and its updater's),
two servers per member, and per server the pods of a rollout (an upgrade rolls every Deployment
at once): servers.replicas, the one maxSurge adds, and from 2 replicas on one more, an old pod
still terminating (holding its sessions) while the next new one starts.
*/}}
{{- define "points-mesh.database.rolloutPods" -}}
{{- $r := int .Values.servers.replicas -}}
{{- add $r (min $r 2) -}}
{{- end -}}

{{- define "points-mesh.database.serverSessions" -}}
{{- mul 2 2 (len .Values.members) (include "points-mesh.database.rolloutPods" . | int) -}}
{{- end -}}

{{/*
The chart's database's max_connections: database.maxConnections if set (refused when it cannot
carry the servers' sessions plus database.extraConnections), else that sum, never below MySQL's
own default of 151.
*/}}
{{- define "points-mesh.database.maxConnections" -}}
{{- $db := .Values.database -}}
{{- $servers := include "points-mesh.database.serverSessions" . | int -}}
{{- $need := add $servers (int $db.extraConnections) -}}
{{- if kindIs "invalid" $db.maxConnections -}}
{{- max 151 $need -}}
{{- else if lt (int $db.maxConnections) $need -}}
{{- fail (printf "database.maxConnections %d is too small for %d members: their servers hold up to %d sessions (2 servers x 2 sessions x %s pods during a rollout at servers.replicas %d, per member), plus database.extraConnections %d = %d; leave it unset (computed) or raise it" (int $db.maxConnections) (len .Values.members) $servers (include "points-mesh.database.rolloutPods" .) (int .Values.servers.replicas) (int $db.extraConnections) $need) -}}
{{- else -}}
{{- $db.maxConnections -}}
{{- end -}}
{{- end -}}

{{/*
The database container's resources: database.resources if set, else sized from max_connections:
a 640 MiB request (MySQL 9.7 with default settings and 151 connections, measured) plus
PER_CONNECTION_KI for every connection beyond 151, and a limit 384 MiB above it plus as much
again per connection (the chart README's sizing table has the measurements).
*/}}
{{- define "points-mesh.database.resources" -}}
{{- $db := .Values.database -}}
{{- if $db.resources -}}
{{- toYaml $db.resources -}}
{{- else -}}
{{- $perConnKi := 1024 -}}
{{- $extra := max 0 (sub (include "points-mesh.database.maxConnections" . | int) 151) -}}
{{- $request := add 640 (div (mul $extra $perConnKi) 1024) -}}
requests:
  cpu: 100m
  memory: {{ $request }}Mi
limits:
  memory: {{ add $request 384 (div (mul $extra $perConnKi) 1024) }}Mi
{{- end -}}
{{- end -}}

{{/*
With database.enabled=false and externalDatabase.maxConnections set: refused when the servers'
sessions do not fit in it.
*/}}
{{- define "points-mesh.database.checkExternal" -}}
{{- $max := .Values.externalDatabase.maxConnections -}}
{{- if and (not .Values.database.enabled) (not (kindIs "invalid" $max)) -}}
{{- $servers := include "points-mesh.database.serverSessions" . | int -}}
{{- if lt (int $max) $servers -}}
{{- fail (printf "externalDatabase.maxConnections %d is too small for %d members: their servers hold up to %d sessions (2 servers x 2 sessions x %s pods during a rollout at servers.replicas %d, per member); raise the database's max_connections (or the account's MAX_USER_CONNECTIONS) and this value, or install fewer members per release" (int $max) (len .Values.members) $servers (include "points-mesh.database.rolloutPods" .) (int .Values.servers.replicas)) -}}
{{- end -}}
{{- end -}}
{{- end -}}
