export * from './duration.js';
export * from './runner-config.js';
