export * from './runner-config.js';
