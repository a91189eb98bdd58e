/**
 * A MariaDB dataset with what a dump can get wrong (several tables, utf8mb4
 * text with emoji, binary BLOBs with every byte value, a view, a trigger, a
 * stored routine and an event), and a fingerprint to compare a restored
 * database with its original: per-table checksums plus the definitions of
 * the view, routines, triggers and events (without the definer, which names
 * the user that restored them).
 */
import type { MariaDbInstance } from './mariadb.js';

export interface MariaSeedOptions {
  /** Rows of the largest table (default 2000). */
  rows?: number;
}

const q = (name: string): string => `\`${name.replace(/`/g, '``')}\``;

/** Creates database `db` and fills it. */
export async function seedMariaRich(m: MariaDbInstance, db: string, opts: MariaSeedOptions = {}): Promise<void> {
  const rows = opts.rows ?? 2000;
  await m.sql(`CREATE DATABASE ${q(db)} CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci;`);
  await m.sql(
    `
CREATE TABLE customers (
  id INT PRIMARY KEY AUTO_INCREMENT,
  name VARCHAR(100) NOT NULL,
  note TEXT,
  created DATETIME(6) NOT NULL,
  balance DECIMAL(12,2) NOT NULL DEFAULT 0
) ENGINE=InnoDB;
CREATE TABLE orders (
  id BIGINT PRIMARY KEY AUTO_INCREMENT,
  customer_id INT NOT NULL,
  total DECIMAL(12,2) NOT NULL,
  status ENUM('new','paid','shipped') NOT NULL,
  doc JSON,
  FOREIGN KEY (customer_id) REFERENCES customers(id)
) ENGINE=InnoDB;
CREATE TABLE blobs (id INT PRIMARY KEY, data LONGBLOB NOT NULL) ENGINE=InnoDB;
CREATE TABLE audit (id INT PRIMARY KEY AUTO_INCREMENT, what VARCHAR(200) NOT NULL) ENGINE=InnoDB;

INSERT INTO customers (name, note, created, balance)
  SELECT CONCAT('customer ', seq, IF(seq % 7 = 0, ' caf\u00e9 \u{1F600} \u6f22\u5b57', '')),
         IF(seq % 3 = 0, NULL, REPEAT(MD5(seq), 3)),
         TIMESTAMP('2026-01-01') + INTERVAL seq SECOND + INTERVAL (seq % 1000) MICROSECOND,
         (seq % 1000) / 7
  FROM seq_1_to_${rows};
INSERT INTO orders (customer_id, total, status, doc)
  SELECT 1 + seq % ${rows}, seq / 3, ELT(1 + seq % 3, 'new', 'paid', 'shipped'), JSON_OBJECT('n', seq, 's', CONCAT('\u00fc', seq))
  FROM seq_1_to_${rows * 2};
INSERT INTO blobs VALUES (1, (SELECT GROUP_CONCAT(CHAR(seq) SEPARATOR '') FROM seq_0_to_255)), (2, UNHEX(REPEAT('00FF7F80', 4096))), (3, '');

CREATE VIEW paid_orders AS SELECT o.id, c.name, o.total FROM orders o JOIN customers c ON c.id = o.customer_id WHERE o.status = 'paid';
CREATE TRIGGER customers_audit AFTER INSERT ON customers FOR EACH ROW INSERT INTO audit (what) VALUES (CONCAT('new customer ', NEW.id));
CREATE FUNCTION order_count(c INT) RETURNS INT READS SQL DATA RETURN (SELECT COUNT(*) FROM orders WHERE customer_id = c);
CREATE PROCEDURE touch(IN c INT) MODIFIES SQL DATA UPDATE customers SET balance = balance + 1 WHERE id = c;
CREATE EVENT nightly ON SCHEDULE EVERY 1 DAY STARTS '2030-01-01 03:00:00' DISABLE DO DELETE FROM audit WHERE id < 0;
INSERT INTO customers (name, created) VALUES ('via trigger', '2026-02-01');
`,
    db,
  );
}

/**
 * The fingerprint of database `db`: `CHECKSUM TABLE` of each base table (and its row count), and the
 * definitions of views, routines, triggers and events with their definer removed. Equal fingerprints mean
 * equal data and objects.
 */
export async function mariaFingerprint(m: MariaDbInstance, db: string): Promise<Record<string, string>> {
  const out: Record<string, string> = {};
  const lit = `'${db.replace(/\\/g, '\\\\').replace(/'/g, "''")}'`;
  const tables = (await m.sql(`SELECT table_name FROM information_schema.tables WHERE table_schema = ${lit} AND table_type = 'BASE TABLE' ORDER BY table_name`)).split('\n').filter(Boolean);
  for (const t of tables) {
    const [, sum] = (await m.sql(`CHECKSUM TABLE ${q(db)}.${q(t)} EXTENDED`)).split('\t');
    out[`table ${t}`] = `${sum} rows=${await m.sql(`SELECT COUNT(*) FROM ${q(db)}.${q(t)}`)}`;
  }
  const defs = await m.sql(
    `SELECT CONCAT('view ', table_name), view_definition FROM information_schema.views WHERE table_schema = ${lit}
     UNION ALL SELECT CONCAT(LOWER(routine_type), ' ', routine_name), routine_definition FROM information_schema.routines WHERE routine_schema = ${lit}
     UNION ALL SELECT CONCAT('trigger ', trigger_name), CONCAT(action_timing, ' ', event_manipulation, ' ', event_object_table, ' ', action_statement) FROM information_schema.triggers WHERE trigger_schema = ${lit}
     UNION ALL SELECT CONCAT('event ', event_name), CONCAT(event_definition, ' ', status, ' ', IFNULL(interval_value, ''), ' ', IFNULL(interval_field, '')) FROM information_schema.events WHERE event_schema = ${lit}`,
  );
  // Definitions name their own database (`shop`.`orders`): without it, a copy restored under another name compares equal.
  const own = new RegExp(`${q(db).replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}\\.`, 'g');
  for (const line of defs.split('\n').filter(Boolean)) {
    const [name, def] = line.split('\t');
    out[name!] = (def ?? '').replace(own, '');
  }
  return out;
}

/**
 * Creates database `db` with one wide InnoDB table and fills it until its data and indexes reach about
 * `targetBytes` (for benchmarks). Returns the rows written and the size reached.
 */
export async function seedMariaBulk(m: MariaDbInstance, db: string, targetBytes: number): Promise<{ rows: number; bytes: number }> {
  await m.sql(`CREATE DATABASE ${q(db)} CHARACTER SET utf8mb4;`);
  await m.sql(
    'CREATE TABLE events (id BIGINT PRIMARY KEY, at DATETIME(6) NOT NULL, kind VARCHAR(32) NOT NULL, amount DECIMAL(12,2) NOT NULL, payload TEXT NOT NULL, KEY (at)) ENGINE=InnoDB;',
    db,
  );
  const size = async (): Promise<number> => {
    await m.sql('ANALYZE TABLE events;', db);
    return Number(await m.sql(`SELECT SUM(data_length + index_length) FROM information_schema.tables WHERE table_schema = DATABASE();`, db));
  };
  let rows = 0;
  let bytes = 0;
  let batch = 100_000;
  while (bytes < targetBytes) {
    await m.sql(
      `INSERT INTO events SELECT seq, TIMESTAMP('2026-01-01') + INTERVAL seq SECOND, ELT(1 + seq % 4, 'order', 'refund', 'login', 'logout'), (seq % 100000) / 7, ` +
        `CONCAT(MD5(seq), ' ', REPEAT(SHA1(seq DIV 3), 4), ' caf\u00e9 ', seq) FROM seq_${rows + 1}_to_${rows + batch};`,
      db,
    );
    rows += batch;
    bytes = await size();
    const perRow = Math.max(1, bytes / rows);
    batch = Math.min(2_000_000, Math.max(50_000, Math.ceil(((targetBytes - bytes) / perRow) * 1.02)));
  }
  return { rows, bytes };
}
