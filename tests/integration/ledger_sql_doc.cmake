# ledger_sql_doc: the DDL block of docs/ledger-sql.md is
# dataplane/tools/ledger_schema.sql, byte for byte (cmake -P, REPO=...).
file(READ ${REPO}/dataplane/tools/ledger_schema.sql ddl)
file(READ ${REPO}/docs/ledger-sql.md doc)
string(FIND "${doc}" "```sql\n${ddl}```" at)
if(at EQUAL -1)
  message(FATAL_ERROR "docs/ledger-sql.md: its DDL block is not "
                      "dataplane/tools/ledger_schema.sql: copy the file into it")
endif()
message(STATUS "docs/ledger-sql.md holds ledger_schema.sql")
