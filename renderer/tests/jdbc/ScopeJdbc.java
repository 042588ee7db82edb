import java.sql.Connection;
import java.sql.DatabaseMetaData;
import java.sql.DriverManager;
import java.sql.PreparedStatement;
import java.sql.ResultSet;
import java.sql.SQLException;
import java.sql.Statement;
import java.util.ArrayList;
import java.util.Collections;
import java.util.List;
import java.util.Properties;

/**
 * The Postgres endpoint as a JDBC tool (DBeaver, Metabase) opens it through pgjdbc: the
 * connection, the DatabaseMetaData calls that draw its schema tree, a prepared statement, the
 * transaction and read-only switches, and writes, which must be refused. One line per check on
 * stdout, {@code <label> ok <value>} or {@code <label> error <SQLSTATE>} and, after a tab, the
 * error's message, for renderer/tests/psql.rs to read.
 *
 * <p>Run with {@code java -cp /usr/share/java/postgresql.jar ScopeJdbc.java PORT PASSWORD}.
 */
public class ScopeJdbc {
    interface Check {
        Object run() throws SQLException;
    }

    static void check(String label, Check check) {
        try {
            System.out.println(label + " ok " + check.run());
        } catch (SQLException e) {
            System.out.println(label + " error " + e.getSQLState() + "\t" + e.getMessage());
        }
        System.out.flush();
    }

    /** A result set's {@code column}, one value per row, sorted and comma-joined. */
    static String column(ResultSet rows, String column) throws SQLException {
        List<String> values = new ArrayList<>();
        try (rows) {
            while (rows.next()) {
                values.add(rows.getString(column));
            }
        }
        Collections.sort(values);
        return String.join(",", values);
    }

    static int count(ResultSet rows) throws SQLException {
        int count = 0;
        try (rows) {
            while (rows.next()) {
                count++;
            }
        }
        return count;
    }

    static String single(Connection con, String sql) throws SQLException {
        try (Statement statement = con.createStatement();
                ResultSet rows = statement.executeQuery(sql)) {
            rows.next();
            return rows.getString(1);
        }
    }

    static Object update(Connection con, String sql) throws SQLException {
        try (Statement statement = con.createStatement()) {
            return statement.executeUpdate(sql);
        }
    }

    public static void main(String[] args) throws SQLException {
        // What the test asks first: that java, its compiler (this file is compiled when run)
        // and the driver are all here.
        if (args[0].equals("--version")) {
            System.out.println(new org.postgresql.Driver().getMajorVersion());
            return;
        }
        String url = "jdbc:postgresql://127.0.0.1:" + args[0] + "/scope";
        Properties properties = new Properties();
        properties.setProperty("user", "scope");
        properties.setProperty("password", args[1]);
        properties.setProperty("ApplicationName", "DBeaver");
        properties.setProperty("connectTimeout", "30");
        properties.setProperty("socketTimeout", "60");
        Connection opened;
        try {
            opened = DriverManager.getConnection(url, properties);
        } catch (SQLException e) {
            System.out.println("connect error " + e.getSQLState() + "\t" + e.getMessage());
            return;
        }
        try (Connection con = opened) {
            DatabaseMetaData meta = con.getMetaData();
            check("product", () -> meta.getDatabaseProductName() + " " + meta.getDatabaseMajorVersion());
            check("version", meta::getDatabaseProductVersion);
            // Metabase reports times in the zone the server says it is in.
            check("timezone", () -> single(con, "SHOW TIMEZONE"));
            check("show_version", () -> single(con, "SHOW server_version"));
            // DBeaver's first query on a Postgres connection.
            check("current_schema", () -> single(con, "SELECT current_schema()") + "," + single(con, "SELECT session_user"));
            check("schemas", () -> column(meta.getSchemas(), "TABLE_SCHEM"));
            String[] tables = {"TABLE"};
            check("tables", () -> column(meta.getTables(null, "public", "%", tables), "TABLE_NAME"));
            check("history", () -> column(meta.getTables(null, "history", "%", tables), "TABLE_NAME"));
            check("columns", () -> {
                List<String> columns = new ArrayList<>();
                try (ResultSet rows = meta.getColumns(null, "public", "processes", "%")) {
                    while (rows.next()) {
                        columns.add(rows.getString("COLUMN_NAME") + ":" + rows.getString("TYPE_NAME"));
                    }
                }
                return String.join(",", columns);
            });
            // Opening a table shows its rows: every column of every table is read.
            check("open", () -> {
                List<String> names = new ArrayList<>();
                try (ResultSet rows = meta.getTables(null, "public", "%", tables)) {
                    while (rows.next()) {
                        names.add(rows.getString("TABLE_NAME"));
                    }
                }
                for (String name : names) {
                    try (Statement statement = con.createStatement();
                            ResultSet rows = statement.executeQuery("SELECT * FROM \"" + name + "\"")) {
                        int columns = rows.getMetaData().getColumnCount();
                        while (rows.next()) {
                            for (int i = 1; i <= columns; i++) {
                                rows.getObject(i);
                            }
                        }
                    }
                }
                return names.size();
            });
            check("keys", () -> count(meta.getPrimaryKeys(null, "public", "processes"))
                    + "," + count(meta.getImportedKeys(null, "public", "processes"))
                    + "," + count(meta.getExportedKeys(null, "public", "processes"))
                    + "," + count(meta.getIndexInfo(null, "public", "processes", false, true)));
            // pgjdbc prepares a statement on the server from its fifth run on: both ways.
            check("prepared", () -> {
                List<String> names = new ArrayList<>();
                try (PreparedStatement statement =
                        con.prepareStatement("SELECT name FROM processes WHERE host_id = ? AND pid = ?")) {
                    for (int run = 0; run < 6; run++) {
                        statement.setString(1, run % 2 == 0 ? "h1" : "h2");
                        statement.setInt(2, run % 2 == 0 ? 101 : 200);
                        try (ResultSet rows = statement.executeQuery()) {
                            while (rows.next()) {
                                names.add(rows.getString(1));
                            }
                        }
                    }
                }
                return String.join(",", names);
            });
            String count = "SELECT count(*) FROM hosts";
            check("transaction", () -> {
                con.setAutoCommit(false);
                String first = single(con, count);
                con.commit();
                String second = single(con, count);
                con.rollback();
                con.setAutoCommit(true);
                return first + "," + second;
            });
            check("read_only", () -> {
                con.setReadOnly(true);
                con.setAutoCommit(false);
                String hosts = single(con, count);
                con.commit();
                con.setAutoCommit(true);
                boolean readOnly = con.isReadOnly();
                con.setReadOnly(false);
                return readOnly + "," + hosts;
            });
            // In a transaction pgjdbc opens with BEGIN READ ONLY.
            check("read_only_insert", () -> {
                con.setReadOnly(true);
                con.setAutoCommit(false);
                try {
                    return update(con, "INSERT INTO hosts (host_id) VALUES ('x')");
                } finally {
                    con.rollback();
                    con.setAutoCommit(true);
                    con.setReadOnly(false);
                }
            });
            check("insert", () -> update(con, "INSERT INTO hosts (host_id) VALUES ('x')"));
            check("create", () -> update(con, "CREATE TABLE t (a INT)"));
            check("prepared_insert", () -> {
                try (PreparedStatement statement = con.prepareStatement("INSERT INTO hosts (host_id) VALUES (?)")) {
                    statement.setString(1, "x");
                    return statement.executeUpdate();
                }
            });
            check("count", () -> single(con, count));
        }
    }
}
