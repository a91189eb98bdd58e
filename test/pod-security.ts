/**
 * The restricted Pod Security Standard (https://kubernetes.io/docs/concepts/security/pod-security-standards/,
 * the baseline rules included) as a check of one pod spec: every rule a pod
 * breaks, in words. Kubernetes 1.20 has no PodSecurity admission, so the
 * tests check rendered pods with this instead.
 */
import type { V1Container, V1PodSpec, V1SELinuxOptions } from '@kubernetes/client-node';

const RESTRICTED_VOLUMES = ['configMap', 'csi', 'downwardAPI', 'emptyDir', 'ephemeral', 'persistentVolumeClaim', 'projected', 'secret'];
const SAFE_SYSCTLS = ['kernel.shm_rmid_forced', 'net.ipv4.ip_local_port_range', 'net.ipv4.ip_unprivileged_port_start', 'net.ipv4.tcp_syncookies', 'net.ipv4.ping_group_range'];
const SECCOMP_ALLOWED = ['RuntimeDefault', 'Localhost'];
/** The seccomp annotations of Kubernetes < 1.19 and the values the restricted profile accepts there. */
const SECCOMP_ANNOTATION = /^(seccomp\.security\.alpha\.kubernetes\.io\/pod|container\.seccomp\.security\.alpha\.kubernetes\.io\/.+)$/;
const seccompAnnotationAllowed = (v: string): boolean => v === 'runtime/default' || v === 'docker/default' || v.startsWith('localhost/');

const when = (broken: boolean | undefined, message: string): string[] => (broken ? [message] : []);
const seLinuxRaised = (o: V1SELinuxOptions | undefined): boolean => Boolean(o?.user || o?.role);

/** Rules on the pod as a whole. */
const POD_RULES: ((pod: V1PodSpec, annotations: Record<string, string>) => string[])[] = [
  (pod) => (['hostNetwork', 'hostPID', 'hostIPC'] as const).flatMap((h) => when(pod[h], `${h} is true`)),
  (pod) =>
    (pod.volumes ?? []).flatMap((v) => {
      const types = Object.keys(v).filter((k) => k !== 'name');
      return when(!types.every((t) => RESTRICTED_VOLUMES.includes(t)), `volume ${v.name} is of type ${types.join(', ')}`);
    }),
  (pod) => (pod.securityContext?.sysctls ?? []).flatMap((s) => when(!SAFE_SYSCTLS.includes(s.name), `sysctl ${s.name} is not safe`)),
  (pod) => when(pod.securityContext?.runAsUser === 0, 'pod runAsUser is 0'),
  (pod) => when(seLinuxRaised(pod.securityContext?.seLinuxOptions), 'pod sets a SELinux user or role'),
  (pod) => {
    const type = pod.securityContext?.seccompProfile?.type;
    return when(type !== undefined && !SECCOMP_ALLOWED.includes(type), `pod seccompProfile is ${type}`);
  },
  (_pod, annotations) =>
    Object.entries(annotations).flatMap(([k, v]) =>
      when(k.startsWith('container.apparmor.security.beta.kubernetes.io/') && v !== 'runtime/default' && !v.startsWith('localhost/'), `AppArmor profile ${v}`),
    ),
  (_pod, annotations) => Object.entries(annotations).flatMap(([k, v]) => when(SECCOMP_ANNOTATION.test(k) && !seccompAnnotationAllowed(v), `seccomp annotation ${k} is ${v}`)),
  (pod) => when(pod.securityContext?.windowsOptions?.hostProcess, 'is a Windows HostProcess pod'),
];

/** Rules on each container; some are met by the pod's securityContext instead. */
const CONTAINER_RULES: ((c: V1Container, pod: V1PodSpec) => string[])[] = [
  (c) => when(c.securityContext?.privileged, 'is privileged'),
  (c) => when(c.securityContext?.allowPrivilegeEscalation !== false, 'does not set allowPrivilegeEscalation: false'),
  (c, pod) => {
    const nonRoot = c.securityContext?.runAsNonRoot ?? pod.securityContext?.runAsNonRoot;
    return when(nonRoot !== true, 'may run as root (runAsNonRoot)');
  },
  (c) => when(c.securityContext?.runAsUser === 0, 'runAsUser is 0'),
  (c, pod) => {
    const type = c.securityContext?.seccompProfile?.type ?? pod.securityContext?.seccompProfile?.type;
    return when(type === undefined || !SECCOMP_ALLOWED.includes(type), `seccompProfile is ${type ?? 'unset'}`);
  },
  (c) => when(!(c.securityContext?.capabilities?.drop ?? []).includes('ALL'), 'does not drop ALL capabilities'),
  (c) => (c.securityContext?.capabilities?.add ?? []).flatMap((cap) => when(cap !== 'NET_BIND_SERVICE', `adds capability ${cap}`)),
  (c) => {
    const procMount = c.securityContext?.procMount;
    return when(procMount !== undefined && procMount !== 'Default', `procMount is ${procMount}`);
  },
  (c) => when(seLinuxRaised(c.securityContext?.seLinuxOptions), 'sets a SELinux user or role'),
  (c) => (c.ports ?? []).flatMap((p) => when(Boolean(p.hostPort), `uses hostPort ${p.hostPort}`)),
];

export function restrictedViolations(pod: V1PodSpec, annotations: Record<string, string> = {}): string[] {
  const containers = [...(pod.initContainers ?? []), ...pod.containers];
  return [
    ...POD_RULES.flatMap((rule) => rule(pod, annotations)),
    ...containers.flatMap((c) => CONTAINER_RULES.flatMap((rule) => rule(c, pod).map((m) => `container ${c.name} ${m}`))),
  ];
}
