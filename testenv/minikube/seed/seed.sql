-- The seed data set: four related tables, a view and a sequence, a few thousand rows.
-- Deterministic (no random()): every seed produces the same rows and checksums.
CREATE TABLE customers (
  id         bigint PRIMARY KEY,
  name       text NOT NULL,
  email      text NOT NULL UNIQUE,
  country    char(2) NOT NULL,
  created_at timestamptz NOT NULL
);
INSERT INTO customers
SELECT i, 'Customer ' || i, 'customer' || i || '@example.test',
       (ARRAY['DE', 'FR', 'NL', 'PL', 'SE'])[1 + i % 5],
       timestamptz '2024-01-01 00:00:00+00' + i * interval '37 minutes'
FROM generate_series(1, 2000) AS i;

CREATE TABLE products (
  id    bigint PRIMARY KEY,
  sku   text NOT NULL UNIQUE,
  title text NOT NULL,
  price numeric(10, 2) NOT NULL CHECK (price > 0)
);
INSERT INTO products
SELECT i, 'SKU-' || lpad(i::text, 5, '0'), 'Product ' || i, 5 + ((i * 7919) % 49500) / 100.0
FROM generate_series(1, 500) AS i;

CREATE TABLE orders (
  id          bigint PRIMARY KEY,
  customer_id bigint NOT NULL REFERENCES customers,
  status      text NOT NULL,
  ordered_at  timestamptz NOT NULL
);
INSERT INTO orders
SELECT i, 1 + (i * 7) % 2000,
       (ARRAY['new', 'paid', 'shipped', 'delivered', 'cancelled'])[1 + i % 5],
       timestamptz '2024-02-01 00:00:00+00' + i * interval '13 minutes'
FROM generate_series(1, 5000) AS i;
CREATE INDEX orders_customer_id ON orders (customer_id);

CREATE TABLE order_items (
  order_id   bigint NOT NULL REFERENCES orders,
  line       int NOT NULL,
  product_id bigint NOT NULL REFERENCES products,
  quantity   int NOT NULL CHECK (quantity > 0),
  PRIMARY KEY (order_id, line)
);
INSERT INTO order_items
SELECT o, l, 1 + (o * 31 + l * 17) % 500, 1 + (o + l) % 4
FROM generate_series(1, 5000) AS o, generate_series(1, 1 + o % 5) AS l;

CREATE VIEW order_totals AS
SELECT o.id AS order_id, o.customer_id, sum(i.quantity * p.price) AS total
FROM orders o JOIN order_items i ON i.order_id = o.id JOIN products p ON p.id = i.product_id
GROUP BY o.id, o.customer_id;

CREATE SEQUENCE invoice_numbers START 10000;
SELECT setval('invoice_numbers', 12345) AS invoice_numbers_at \gset
