export * from './common.js';
export * from './database-backup.js';
export * from './database-backup-validate.js';
export * from './engine.js';
export * from './manifests.js';
export * from './runner-pod.js';
export * from './storage-class.js';
export * from './structural.js';
