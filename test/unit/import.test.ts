/** The pure parts of import: recognising compression and formats, and keeping a location path inside the DatabaseBackup's directory. */
import { gzipSync } from 'node:zlib';
import { describe, expect, it } from 'vitest';
import { detectFormat } from '../../runner/engines/registry.js';
import { dumpServerVersion, importKey, sniffCompression } from '../../runner/ops/import.js';

describe('sniffCompression', () => {
  it.each([
    ['gzip', gzipSync(Buffer.from('x')), 'gzip'],
    ['zstd frame', Buffer.from([0x28, 0xb5, 0x2f, 0xfd, 0x04]), 'zstd'],
    ['a custom archive', Buffer.from('PGDMP\x01\x0e'), 'none'],
    ['one byte', Buffer.from([0x1f]), 'none'],
    ['empty', Buffer.alloc(0), 'none'],
  ])('%s', (_what, head, want) => {
    expect(sniffCompression(head)).toBe(want);
  });
});

describe('detectFormat', () => {
  it.each([
    ['PGDMP\x01\x0e\x00', 'postgresql', 'pg_dump-custom'],
    ['/*M!999999\\- enable the sandbox mode */ \n-- MariaDB dump 10.19', 'mysql', 'mysql-sql'],
    ['-- MariaDB dump 10.19  Distrib 10.6.18-MariaDB', 'mysql', 'mysql-sql'],
    ['-- MySQL dump 10.13  Distrib 8.0.36', 'mysql', 'mysql-sql'],
    ['--\n-- PostgreSQL database dump\n--\n\n\\restrict abc', 'postgresql', 'pg_dump-plain'],
    ['--\n-- PostgreSQL database cluster dump\n--\n', 'postgresql', 'pg_dumpall-globals'],
  ])('%j is %s %s', (head, engine, format) => {
    expect(detectFormat(Buffer.from(head))).toMatchObject({ engine, format: { format } });
  });

  it.each(['-- PostgreSQL database dump', 'CREATE TABLE t (id int);', '', 'PGDM'])('%j is nothing this runner restores', (head) => {
    expect(detectFormat(Buffer.from(head))).toBeUndefined();
  });

  it('reads the server version a MariaDB/MySQL dump header names', () => {
    expect(dumpServerVersion(Buffer.from('-- MariaDB dump 10.19\n--\n-- Host: x    Database: shop\n-- Server version\t10.11.19-MariaDB-0+deb12u1-log\n'))).toBe('10.11.19-MariaDB-0+deb12u1-log');
    expect(dumpServerVersion(Buffer.from('PGDMP'))).toBeUndefined();
  });
});

describe('importKey', () => {
  const dir = 'db/shop/orders/';
  it('joins a relative path under the directory', () => {
    expect(importKey(dir, 'imports/orders.dump.gz')).toBe('db/shop/orders/imports/orders.dump.gz');
  });

  it.each(['../other/orders/backups/x/data.dump', 'imports/../../x', '/etc/passwd', 'a//b', './a', '', 'a/.', 'a\\..\\b', 'a\0b'])('refuses %j', (path) => {
    expect(() => importKey(dir, path)).toThrow(/must be a relative path inside this DatabaseBackup's directory/);
  });
});
