import java.text.*;
import java.util.*;
import java.time.ZoneId;

public class ZoneNames {
    static String q(String s) {
        StringBuilder b = new StringBuilder("\"");
        for (char c : s.toCharArray()) {
            if (c == '"' || c == '\\') b.append('\\').append(c);
            else if (c < 0x20 || c > 0x7e) b.append(String.format("\\u%04x", (int) c));
            else b.append(c);
        }
        return b.append('"').toString();
    }
    public static void main(String[] a) {
        Locale us = Locale.US;
        StringBuilder out = new StringBuilder("{\n \"zoneStrings\": [\n");
        String[][] zs = DateFormatSymbols.getInstance(us).getZoneStrings();
        for (int i = 0; i < zs.length; i++) {
            String[] z = zs[i];
            TimeZone tz = TimeZone.getTimeZone(z[0]);
            String[] row = new String[5];
            row[0] = z[0];
            for (int k = 1; k <= 4; k++) {
                String n = k < z.length ? z[k] : "";
                if (n == null || n.isEmpty()) n = tz.getDisplayName(k >= 3, k % 2 == 1 ? TimeZone.LONG : TimeZone.SHORT, us);
                row[k] = n;
            }
            out.append("  [");
            for (int k = 0; k < 5; k++) out.append(k > 0 ? "," : "").append(q(row[k]));
            out.append("]").append(i + 1 < zs.length ? ",\n" : "\n");
        }
        out.append(" ],\n \"zones\": {\n");
        String[] ids = TimeZone.getAvailableIDs();
        Arrays.sort(ids);
        boolean first = true;
        for (String id : ids) {
            TimeZone tz = TimeZone.getTimeZone(id);
            if (!first) out.append(",\n");
            first = false;
            out.append("  ").append(q(id)).append(": [")
               .append(q(tz.getDisplayName(false, TimeZone.SHORT, us))).append(",")
               .append(q(tz.getDisplayName(false, TimeZone.LONG, us))).append(",")
               .append(q(tz.getDisplayName(true, TimeZone.SHORT, us))).append(",")
               .append(q(tz.getDisplayName(true, TimeZone.LONG, us))).append(",")
               .append(tz.getRawOffset()).append(",").append(tz.getDSTSavings()).append(",")
               .append(tz.useDaylightTime() ? "true" : "false").append("]");
        }
        out.append("\n },\n \"shortIds\": {\n");
        first = true;
        for (Map.Entry<String,String> e : new TreeMap<>(ZoneId.SHORT_IDS).entrySet()) {
            if (!first) out.append(",\n");
            first = false;
            out.append("  ").append(q(e.getKey())).append(": ").append(q(e.getValue()));
        }
        out.append("\n }\n}\n");
        System.out.print(out);
    }
}
