-- One row per table of the seed database: name, row count and checksum (tab-separated
-- with `mariadb --batch --skip-column-names`), ordered by name byte by byte. The checksum
-- is the sum of the first 64 bits of MD5 over each row's columns, so it does not depend on
-- row order: a restored table gives the same value as the seeded one. The seed Job records
-- these rows in testenv_meta.seed_checksums; docs/testenv-minikube.md compares them after
-- a restore.
SELECT 'customers' AS table_name, COUNT(*) AS row_count,
       COALESCE(SUM(CAST(CONV(LEFT(MD5(CONCAT_WS('|', id, name, email, country, created_at)), 16), 16, 10) AS UNSIGNED)), 0) AS checksum
FROM customers
UNION ALL
SELECT 'order_items', COUNT(*), COALESCE(SUM(CAST(CONV(LEFT(MD5(CONCAT_WS('|', order_id, line, product_id, quantity)), 16), 16, 10) AS UNSIGNED)), 0)
FROM order_items
UNION ALL
SELECT 'order_status_log', COUNT(*), COALESCE(SUM(CAST(CONV(LEFT(MD5(CONCAT_WS('|', id, order_id, old_status, new_status, changed_at)), 16), 16, 10) AS UNSIGNED)), 0)
FROM order_status_log
UNION ALL
SELECT 'orders', COUNT(*), COALESCE(SUM(CAST(CONV(LEFT(MD5(CONCAT_WS('|', id, customer_id, status, ordered_at, updated_at)), 16), 16, 10) AS UNSIGNED)), 0)
FROM orders
UNION ALL
SELECT 'products', COUNT(*), COALESCE(SUM(CAST(CONV(LEFT(MD5(CONCAT_WS('|', id, sku, title, price)), 16), 16, 10) AS UNSIGNED)), 0)
FROM products
ORDER BY CAST(table_name AS BINARY);
