//! The national center's incident taxonomy and the severity scale.
//!
//! The ids are a stable interface: they appear in metrics labels, reports,
//! the API and rule files, so renaming one breaks dashboards.

use serde::{Deserialize, Serialize};

use crate::ids::id_enum;

id_enum! {
    #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
    #[serde(rename_all = "kebab-case")]
    pub enum Category: "category" {
        Phishing => "phishing",
        Deface => "deface",
        Malware => "malware",
        Bruteforce => "bruteforce",
        WebAttack => "web-attack",
        Recon => "recon",
        Dos => "dos",
        PrivilegeEscalation => "privilege-escalation",
        PolicyViolation => "policy-violation",
    }
}

impl Category {
    /// Label used in Vietnamese reports, as in the center's bulletins.
    pub fn label_vi(self) -> &'static str {
        match self {
            Category::Phishing => "Lừa đảo (Phishing)",
            Category::Deface => "Thay đổi giao diện (Deface)",
            Category::Malware => "Mã độc (Malware)",
            Category::Bruteforce => "Dò quét mật khẩu",
            Category::WebAttack => "Tấn công ứng dụng web",
            Category::Recon => "Thu thập thông tin / dò quét",
            Category::Dos => "Từ chối dịch vụ",
            Category::PrivilegeEscalation => "Leo thang đặc quyền",
            Category::PolicyViolation => "Vi phạm chính sách ATTT",
        }
    }

    /// Label used in English reports.
    pub fn label_en(self) -> &'static str {
        match self {
            Category::Phishing => "Phishing",
            Category::Deface => "Defacement",
            Category::Malware => "Malware",
            Category::Bruteforce => "Password brute force",
            Category::WebAttack => "Web application attack",
            Category::Recon => "Reconnaissance / scanning",
            Category::Dos => "Denial of service",
            Category::PrivilegeEscalation => "Privilege escalation",
            Category::PolicyViolation => "Security policy violation",
        }
    }

    /// ENISA Reference Security Incident Taxonomy class.
    pub fn rsit(self) -> &'static str {
        match self {
            Category::Phishing => "fraud:phishing",
            Category::Deface => {
                "information-content-security:unauthorised-information-modification"
            }
            Category::Malware => "malicious-code:infected-system",
            Category::Bruteforce => "intrusion-attempts:brute-force",
            Category::WebAttack => "intrusion-attempts:exploit",
            Category::Recon => "information-gathering:scanner",
            Category::Dos => "availability:dos",
            Category::PrivilegeEscalation => "intrusions:privileged-account-compromise",
            Category::PolicyViolation => "other:other",
        }
    }
}

id_enum! {
    #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
    #[serde(rename_all = "lowercase")]
    pub enum Severity: "severity" {
        Info => "info",
        Low => "low",
        Medium => "medium",
        High => "high",
        Critical => "critical",
    }
}

impl Severity {
    pub fn label_en(self) -> &'static str {
        match self {
            Severity::Info => "Info",
            Severity::Low => "Low",
            Severity::Medium => "Medium",
            Severity::High => "High",
            Severity::Critical => "Critical",
        }
    }

    pub fn label_vi(self) -> &'static str {
        match self {
            Severity::Info => "Thông tin",
            Severity::Low => "Thấp",
            Severity::Medium => "Trung bình",
            Severity::High => "Cao",
            Severity::Critical => "Nghiêm trọng",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_round_trip() {
        for c in Category::ALL {
            assert_eq!(c.id().parse::<Category>(), Ok(c));
        }
        for s in Severity::ALL {
            assert_eq!(s.id().parse::<Severity>(), Ok(s));
        }
        assert!("webattack"
            .parse::<Category>()
            .unwrap_err()
            .contains("web-attack"));
    }
}
