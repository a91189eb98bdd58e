/** Valid DatabaseBackupStorageClass and DatabaseBackup objects shared by the unit and integration tests of api/crds. */

export const validStorageClass = () => ({
  apiVersion: 'dbbackup.io/v1alpha1',
  kind: 'DatabaseBackupStorageClass',
  metadata: { name: 'standard' },
  spec: {
    allowedNamespaces: ['shop', 'billing'],
    locations: [
      { name: 'local', filesystem: { path: '/backups', claimName: 'backups' } },
      {
        name: 'offsite',
        prefix: 'db',
        s3: {
          bucket: 'orders-backups',
          region: 'eu-central-1',
          endpoint: 'https://minio.example:9000',
          forcePathStyle: true,
          accessKeyIdSecretRef: { secretName: 'minio', key: 'access-key' },
          secretAccessKeySecretRef: { secretName: 'minio', key: 'secret-key' },
        },
      },
      { name: 'gcs', gcs: { bucket: 'orders-backups-eu', keySecretRef: { secretName: 'gcs', key: 'key.json' } } },
    ],
  } as Record<string, unknown>,
});

export const validBackup = () => ({
  apiVersion: 'dbbackup.io/v1alpha1',
  kind: 'DatabaseBackup',
  metadata: { name: 'orders', namespace: 'shop' },
  spec: {
    engine: {
      type: 'postgresql',
      postgresql: {
        host: 'orders-db.shop.svc',
        database: 'orders',
        user: 'backup',
        passwordSecretRef: { name: 'orders-db', key: 'password' },
        sslMode: 'verify-full',
        sslRootCertSecretRef: { name: 'orders-db-ca', key: 'ca.crt' },
      },
    },
    schedule: { cron: '0 3 * * *', timeZone: 'Europe/Berlin', jitter: '5m' },
    retention: { keepLast: 3, keepDaily: 7, keepWeekly: 4, keepMonthly: 12, minKeep: 1 },
    storageClassName: 'standard',
    locations: ['local', 'offsite'],
    runner: {
      resources: { requests: { cpu: '500m', memory: '256Mi' }, limits: { memory: '1Gi' } },
      nodeSelector: { 'kubernetes.io/os': 'linux' },
      tolerations: [{ key: 'dedicated', operator: 'Equal', value: 'backup', effect: 'NoSchedule' }],
      affinity: { nodeAffinity: { requiredDuringSchedulingIgnoredDuringExecution: { nodeSelectorTerms: [{ matchExpressions: [{ key: 'zone', operator: 'In', values: ['a'] }] }] } } },
      imagePullSecrets: [{ name: 'registry' }],
      serviceAccountAnnotations: { 'eks.amazonaws.com/role-arn': 'arn:aws:iam::123456789012:role/backup' },
      podAnnotations: { 'example.com/team': 'shop' },
      extraVolumes: [{ name: 'scratch', emptyDir: { sizeLimit: '1Gi' } }],
      extraVolumeMounts: [{ name: 'scratch', mountPath: '/scratch' }],
      fsGroup: 1000,
    },
  } as Record<string, unknown>,
});
