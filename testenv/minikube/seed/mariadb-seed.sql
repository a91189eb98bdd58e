-- The MariaDB seed data set: four related tables and a log table, a view, a trigger, a
-- function, a procedure and an event, a few thousand rows. Runs in the seed database.
-- Deterministic (no RAND(), no NOW(); rows from the SEQUENCE engine's seq_1_to_N): every
-- seed produces the same rows and checksums.
CREATE TABLE customers (
  id         INT PRIMARY KEY,
  name       VARCHAR(100) NOT NULL,
  email      VARCHAR(200) NOT NULL UNIQUE,
  country    CHAR(2) NOT NULL,
  created_at DATETIME NOT NULL
) ENGINE = InnoDB;
INSERT INTO customers
SELECT seq, CONCAT('Customer ', seq, IF(seq % 7 = 0, ' café ✓', '')), CONCAT('customer', seq, '@example.test'),
       ELT(1 + seq % 5, 'DE', 'FR', 'NL', 'PL', 'SE'),
       TIMESTAMP '2024-01-01 00:00:00' + INTERVAL (seq * 37) MINUTE
FROM seq_1_to_2000;

CREATE TABLE products (
  id    INT PRIMARY KEY,
  sku   VARCHAR(20) NOT NULL UNIQUE,
  title VARCHAR(100) NOT NULL,
  price DECIMAL(10, 2) NOT NULL CHECK (price > 0)
) ENGINE = InnoDB;
INSERT INTO products
SELECT seq, CONCAT('SKU-', LPAD(seq, 5, '0')), CONCAT('Product ', seq), 5 + ((seq * 7919) % 49500) / 100
FROM seq_1_to_500;

CREATE TABLE orders (
  id          INT PRIMARY KEY,
  customer_id INT NOT NULL,
  status      ENUM('new', 'paid', 'shipped', 'delivered', 'cancelled') NOT NULL,
  ordered_at  DATETIME NOT NULL,
  updated_at  DATETIME NULL,
  KEY orders_customer_id (customer_id),
  CONSTRAINT orders_customer FOREIGN KEY (customer_id) REFERENCES customers (id)
) ENGINE = InnoDB;
INSERT INTO orders (id, customer_id, status, ordered_at)
SELECT seq, 1 + (seq * 7) % 2000, ELT(1 + seq % 5, 'new', 'paid', 'shipped', 'delivered', 'cancelled'),
       TIMESTAMP '2024-02-01 00:00:00' + INTERVAL (seq * 13) MINUTE
FROM seq_1_to_5000;

CREATE TABLE order_items (
  order_id   INT NOT NULL,
  line       INT NOT NULL,
  product_id INT NOT NULL,
  quantity   INT NOT NULL CHECK (quantity > 0),
  PRIMARY KEY (order_id, line),
  CONSTRAINT order_items_order FOREIGN KEY (order_id) REFERENCES orders (id),
  CONSTRAINT order_items_product FOREIGN KEY (product_id) REFERENCES products (id)
) ENGINE = InnoDB;
INSERT INTO order_items
SELECT o.seq, l.seq, 1 + (o.seq * 31 + l.seq * 17) % 500, 1 + (o.seq + l.seq) % 4
FROM seq_1_to_5000 AS o JOIN seq_1_to_5 AS l ON l.seq <= 1 + o.seq % 5;

-- Filled by the trigger below whenever an order's status changes.
CREATE TABLE order_status_log (
  id         INT AUTO_INCREMENT PRIMARY KEY,
  order_id   INT NOT NULL,
  old_status VARCHAR(20) NOT NULL,
  new_status VARCHAR(20) NOT NULL,
  changed_at DATETIME NOT NULL
) ENGINE = InnoDB;

CREATE VIEW order_totals AS
SELECT o.id AS order_id, o.customer_id, o.status, SUM(i.quantity * p.price) AS total
FROM orders AS o JOIN order_items AS i ON i.order_id = o.id JOIN products AS p ON p.id = i.product_id
GROUP BY o.id, o.customer_id, o.status;

CREATE TRIGGER orders_status_log AFTER UPDATE ON orders FOR EACH ROW
INSERT INTO order_status_log (order_id, old_status, new_status, changed_at)
SELECT NEW.id, OLD.status, NEW.status, NEW.updated_at FROM DUAL WHERE OLD.status <> NEW.status;

CREATE FUNCTION order_total(p_order INT) RETURNS DECIMAL(12, 2) READS SQL DATA
RETURN (SELECT SUM(i.quantity * p.price) FROM order_items AS i JOIN products AS p ON p.id = i.product_id WHERE i.order_id = p_order);

-- Paid orders up to id p_up_to become shipped a day after they were placed (the trigger logs each).
CREATE PROCEDURE ship_paid_orders(IN p_up_to INT) MODIFIES SQL DATA
UPDATE orders SET status = 'shipped', updated_at = ordered_at + INTERVAL 1 DAY WHERE status = 'paid' AND id <= p_up_to;

-- Disabled, so it never changes the data; it is there to be backed up and restored.
CREATE EVENT purge_status_log ON SCHEDULE EVERY 1 DAY STARTS '2030-01-01 03:00:00' DISABLE
DO DELETE FROM order_status_log WHERE changed_at < TIMESTAMP '2000-01-01 00:00:00';

CALL ship_paid_orders(1000);
