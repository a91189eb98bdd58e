export * from './duration.js';
export * from './runner-config.js';
export * from './prefix.js';
